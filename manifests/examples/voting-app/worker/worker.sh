#!/bin/sh
# Moves votes from the queue to the store; GET :8080/status says how many it moved.
mkdir -p /www && n=0 && echo "processed 0" > /www/status
httpd -f -p 8080 -h /www & pid=$!
trap 'kill $pid; exit 0' TERM INT
while true; do
  vote=$(wget -q -O - "http://${QUEUE_HOST:-queue}:8080/cgi-bin/pop" 2>/dev/null)
  case "$vote" in
    a|b)
      if wget -q -O /dev/null "http://${STORE_HOST:-store}:8080/cgi-bin/add?$vote"; then
        n=$((n + 1)); echo "processed $n" > /www/status
      else
        wget -q -O /dev/null "http://${QUEUE_HOST:-queue}:8080/cgi-bin/push?$vote"  # put it back
      fi ;;
    *) sleep 1 ;;
  esac
done
