# becomes healthy a few probes after it starts
sleep 2
touch /tmp/ready
exec sleep 600
