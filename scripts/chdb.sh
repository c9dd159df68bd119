#!/usr/bin/env bash
# placeholder until the storage work lands: scripts/chdb.sh fetches libchdb.so
exit 0
