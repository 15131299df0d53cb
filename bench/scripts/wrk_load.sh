# Figure 2's load, for the scripts that source it (bench/scripts/ingest_http.sh,
# bench/handler-floor/measure.sh), run from the repository root. Needs URL, THREADS,
# CONNECTIONS, DURATION and PY; loops mode reads its requests from BENCH_WRK_REQUESTS.
# bench/wrk/webhooks.lua says why one wrk thread per process.

run_wrk() { # mode path out [processes [pinned command...]]: one wrk -t1 per process, rates added
  local procs="${4:-$THREADS}" pids=() parts=()
  for part in $(seq "$procs"); do
    BENCH_WRK_MODE="$1" BENCH_WRK_OUT="$3.$part.json" BENCH_WRK_PART="$part" \
      BENCH_WRK_PARTS="$procs" "${@:5}" wrk -t1 -c$(( CONNECTIONS / procs )) -d"${DURATION}s" \
      --latency -s bench/wrk/webhooks.lua "$URL$2" > "$3.$part.txt" &
    pids+=($!); parts+=("$3.$part.json")
  done
  wait "${pids[@]}"
  "$PY" bench/scripts/wrk_merge.py "$3" "${parts[@]}"
}
