"""Go's text/template, as the docker CLI's `--format` uses it: parsing and rendering,
shared by `berth` and `berth compose`."""
