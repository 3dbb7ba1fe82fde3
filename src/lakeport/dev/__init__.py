"""The one-machine platform (`make dev`) and the local services it and the tests run."""
