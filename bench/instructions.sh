#!/usr/bin/env bash
# Instructions per spend in the server, counted by callgrind, with its call graph.
#
#   bench/instructions.sh CREDITS_BIN OUT_DIR [credits-bench arguments...]
#
# Runs `credits-bench` (release, next to the credits binary's target or on PATH) against
# CREDITS_BIN under `valgrind --tool=callgrind`, zeroes the counts once the server is warm,
# dumps them 20 s later, and prints the server's instructions per spend (the total over the
# spends counted by `Keyed::record`, one a spend) with the profile's call tree in OUT_DIR
# (`calling.txt`: each function with what it calls, inclusive). Instruction counts are the same
# run after run for the same binary and load, whatever else the machine is doing, so two builds
# compare without alternating them (docs/benchmarks.md, change 31). They are not time: the
# kernel, the waits and the disk are not in them, and `rep movs`/`rep stos` count each byte.
# The server runs about fifty times slower under valgrind: its batches are as large as the
# clients allow, whatever their number.
#
# Default load: SQLite, many accounts, 1 client.
set -euo pipefail
bin=$(realpath "$1")
out=$2
shift 2
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--db sqlite --scenarios many --clients 1)
bench=$(dirname "$bin")/credits-bench
[ -x "$bench" ] || bench=credits-bench
mkdir -p "$out"
out=$(realpath "$out")
rm -f "$out"/callgrind.out.*
wrapper="$out/server-under-callgrind.sh"
cat > "$wrapper" <<EOF
#!/usr/bin/env bash
exec valgrind --tool=callgrind --callgrind-out-file=$out/callgrind.out.%p --dump-instr=no "$bin" "\$@"
EOF
chmod +x "$wrapper"
"$bench" --credits-bin "$wrapper" "${args[@]}" --seconds 45 --no-paced > "$out/bench.log" 2>&1 &
harness=$!
pid=""
for _ in $(seq 1 120); do
    pid=$(pgrep -f "callgrind.*$bin serve" | head -1 || true)
    [ -n "$pid" ] && break
    sleep 1
done
[ -n "$pid" ] || { echo "the server did not start under valgrind: $out/bench.log" >&2; kill "$harness"; exit 1; }
# Seeding, migrations and the first requests are not counted.
sleep 15
callgrind_control -z "$pid" > /dev/null 2>&1
sleep 20
callgrind_control -d "$pid" > /dev/null 2>&1
# The harness goes on to its baselines, then drops its database (PostgreSQL) and exits.
wait "$harness" || echo "credits-bench failed: $out/bench.log" >&2
profile=$(ls "$out"/callgrind.out.*.1 | head -1)
callgrind_annotate --tree=calling --inclusive=yes "$profile" > "$out/calling.txt" 2> /dev/null
total=$(grep -m1 "PROGRAM TOTALS" "$out/calling.txt" | awk '{gsub(",", "", $1); print $1}')
spends=$(grep -o "credits::service::keyed::Keyed::record ([0-9,]*x)" "$out/calling.txt" | head -1 | grep -o "[0-9,]*x" | tr -d ',x')
echo "instructions: $total over $spends spends: $((total / spends)) a spend (call tree: $out/calling.txt)"
