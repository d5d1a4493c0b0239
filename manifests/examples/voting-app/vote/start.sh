#!/bin/sh
# PID 1: busybox httpd serving /www (CGI under /www/cgi-bin); exits 0 on SIGTERM.
[ -x /init.sh ] && /init.sh
httpd -f -p 8080 -h /www & pid=$!
trap 'kill $pid; exit 0' TERM INT
wait $pid
