# becomes healthy a few probes after it starts
sleep 3
touch /tmp/ready
exec sleep 600
