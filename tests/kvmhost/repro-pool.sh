#!/bin/bash
# The reproducer of the nested host's second failure (README.md, E11-E14): test_pool's
# 50-clone case R times (default 4) in one nested VM, printing each clone that ended and
# how, then what the nested kernel logged. Run it through run.sh, e.g.
#   THAW_KVMHOST=force THAW_KVMHOST_RETRIES=0 THAW_KVMHOST_DEBUG=1 \
#       tests/kvmhost/run.sh -- tests/kvmhost/repro-pool.sh
# PIN=N runs the test on CPU N of the nested host only (the route around, E14).
cd "$(dirname "$0")/../.." || exit 2
B=${B:-build}
for i in $(seq "${R:-4}"); do
	echo "== round $i $(date +%T)"
	THAW_TEST_FILTER='pool_of_20*' ${PIN:+taskset -c "$PIN"} \
		tests/run.sh "$B" program "$B/itests/test_pool" 2>&1 |
		grep -E "ended|^program" | sed -E 's/"api_sock.*"exit_status"/... "exit_status"/'
done
echo "== dmesg"
dmesg | grep -iE "panic|corrupt|bug|warn|triple|kvm" | tail -20
