"""What the gateway tells about each request beyond counting it: where its time went, and its trace."""
