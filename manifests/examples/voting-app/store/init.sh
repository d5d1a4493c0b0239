#!/bin/sh
mkdir -p /data
[ -f /data/a ] || echo 0 > /data/a
[ -f /data/b ] || echo 0 > /data/b
