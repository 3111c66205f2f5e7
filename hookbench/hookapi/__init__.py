"""The client side of the hook API: the contract both sides share, the HTTP client, the server launcher, the lease."""
