"""HTTP routes: thin functions over the gateway's plain logic."""
