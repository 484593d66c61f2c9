"""Commands: their store in Redis and issuing them through Seam or a device cloud."""
