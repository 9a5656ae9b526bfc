"""A toy Flower app for ssddl's transport: each node keeps a counter and a running sum in its
persisted state bytes; the server drives it through ``FlowerExchange``."""
