#!/bin/sh
# workerd, started so that the kernel sends it SIGTERM when the process that started it ends, even by SIGKILL
# (which no handler sees). `npm start` points Miniflare here (MINIFLARE_WORKERD_PATH) on Linux when setpriv is there;
# BOOMERANG_WORKERD is the real binary, BOOMERANG_SETPRIV the setpriv found. See tieWorkerd in scripts/lean.mjs.
exec "$BOOMERANG_SETPRIV" --pdeathsig TERM "$BOOMERANG_WORKERD" "$@"
