#!/bin/sh
mkdir -p /data && touch /data/queue
