#!/usr/bin/env bash
# Scripts/ceph-s3.sh — a real, single-node Ceph S3 store on 127.0.0.1 for the S3 tests and benchmarks.
#
#   Scripts/ceph-s3.sh start    install Debian's ceph-mon, ceph-osd, radosgw if missing, then bring up one
#                               monitor, one BlueStore OSD on a sparse file and radosgw; create a test user.
#                               Idempotent: starts only what is not running.
#   Scripts/ceph-s3.sh stop     stop the three daemons (CEPH_S3_PURGE=1 also deletes the cluster's folder)
#   Scripts/ceph-s3.sh status   exit 0 when radosgw answers
#   Scripts/ceph-s3.sh env      print the environment for clients (AWS_* and CUSTODY_TEST_S3)
#
# Everything lives in $CEPH_S3_DIR (default /tmp/custody-ceph): configuration, keys, data, logs, pid files.
# Nothing is written to /etc/ceph or /var/lib/ceph, and no systemd unit is used. No ceph-mgr: RADOS and
# radosgw do not need it (`ceph -s` then shows no pool statistics, and `ceph pg …` hangs; neither is used).
# The credentials are fixed test values for a throw-away loopback cluster, never for real data.
set -euo pipefail

DIR=${CEPH_S3_DIR:-/tmp/custody-ceph}
PORT=${CEPH_S3_PORT:-7480}
MON_V2=${CEPH_S3_MON_V2:-3300}
MON_V1=${CEPH_S3_MON_V1:-6789}
OSD_BYTES=${CEPH_S3_OSD_BYTES:-21474836480}  # sparse: only what is written takes disk space
ACCESS_KEY=CUSTODYTESTACCESS001
SECRET_KEY=custody-test-secret-not-for-real-data-0001
export CEPH_CONF=$DIR/ceph.conf
CEPH=(ceph --connect-timeout 15)

started=$(date +%s)
say() { printf '[ceph-s3 +%ss] %s\n' "$(($(date +%s) - started))" "$*"; }
fail() {
  say "ERROR: $*"
  for log in "$DIR"/log/*.log; do [ -f "$log" ] && { echo "--- $log"; tail -n 20 "$log"; }; done
  exit 1
}

# A pid file's process is alive when it exists, is not a zombie (some PID 1s reap late) and has the name.
is_running() {
  local pid state
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

wait_until() {  # seconds, what, command…
  local deadline=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for $what"
    sleep 0.5
  done
}

rgw_answers() { curl -sf -o /dev/null "http://127.0.0.1:$PORT/"; }

install_packages() {
  local missing=()
  for tool in ceph ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool uuidgen curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Ceph (missing: ${missing[*]})"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    ceph-mon ceph-osd radosgw ceph-common curl uuid-runtime >/dev/null
}

write_config() {
  local fsid=$1
  cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $DIR/keyring
run_dir = $DIR/run
admin_socket = $DIR/run/\$cluster-\$name.asok
pid_file = $DIR/run/\$name.pid
log_file = $DIR/log/\$cluster-\$name.log
log_to_stderr = false
err_to_stderr = true
# One OSD: pools of one replica, few placement groups, no autoscaler.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# Monitor writes every 0.1 s instead of every second: creating the pools takes 2 s, not 14.
paxos_propose_interval = 0.1

[mon]
mon_data = $DIR/mon/\$cluster-\$id

[osd]
osd_data = $DIR/osd/\$cluster-\$id
osd_objectstore = bluestore
# No bluestore_block_path: BlueStore then creates osd_data/block as a plain sparse file (setting the path to
# osd_data/block makes it a symlink to itself).
bluestore_block_create = true
bluestore_block_size = $OSD_BYTES
bluestore_fsck_on_mount = false
bluestore_fsck_on_mkfs = false
osd_memory_target = 1073741824
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1

[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$PORT
rgw_data = $DIR/rgw
rgw_thread_pool_size = 64
EOF
}

bootstrap() {
  say "creating a cluster in $DIR"
  mkdir -p "$DIR"/{run,log,mon,osd/ceph-0,rgw}
  # BlueStore opens its file with O_DIRECT.
  dd if=/dev/zero of="$DIR/.direct-io" bs=4096 count=1 oflag=direct 2>/dev/null \
    || fail "$DIR does not support O_DIRECT (BlueStore needs it): set CEPH_S3_DIR to a folder on ext4 or xfs"
  rm -f "$DIR/.direct-io"
  local fsid
  fsid=$(uuidgen)
  uuidgen >"$DIR/osd.uuid"
  write_config "$fsid"
  # One keyring with every entity and its capabilities; `ceph-mon --mkfs` imports all of them.
  local keyring=$DIR/keyring
  ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mgr 'allow *' >/dev/null
  ceph-authtool "$keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' \
    --cap osd 'allow *' >/dev/null
  ceph-authtool "$keyring" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' \
    --cap mgr 'allow rw' >/dev/null
  chmod 600 "$keyring"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" "$DIR/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$DIR/monmap" --keyring "$keyring" || fail "ceph-mon --mkfs failed"
}

osd_is_up() {
  "${CEPH[@]}" --admin-daemon "$DIR/run/ceph-osd.0.asok" status 2>/dev/null | grep -q '"state": "active"' \
    && "${CEPH[@]}" osd dump 2>/dev/null | grep -q '^osd.0 up'
}

start() {
  install_packages
  if [ ! -f "$DIR/.ready" ] && [ -d "$DIR" ]; then
    say "an earlier start did not finish: starting over"
    stop
    rm -rf "$DIR"
  fi
  [ -f "$CEPH_CONF" ] || bootstrap
  if ! is_running "$DIR/run/mon.a.pid" ceph-mon; then
    say "starting ceph-mon"
    ceph-mon -i a || fail "ceph-mon did not start"
  fi
  wait_until 60 "the monitor" "${CEPH[@]}" mon stat
  if [ ! -f "$DIR/.osd-made" ]; then
    say "making osd.0 (BlueStore on a sparse file)"
    "${CEPH[@]}" osd new "$(cat "$DIR/osd.uuid")" 0 >/dev/null || fail "ceph osd new failed"
    ceph-osd -i 0 --mkfs --osd-uuid "$(cat "$DIR/osd.uuid")" >"$DIR/log/osd-mkfs.out" 2>&1 \
      || fail "ceph-osd --mkfs failed: $(tail -n 5 "$DIR/log/osd-mkfs.out")"
    touch "$DIR/.osd-made"
  fi
  if ! is_running "$DIR/run/osd.0.pid" ceph-osd; then
    say "starting ceph-osd"
    ceph-osd -i 0 || fail "ceph-osd did not start"
  fi
  wait_until 120 "osd.0" osd_is_up
  if [ ! -f "$DIR/.pools-made" ]; then
    # radosgw would make these lazily at about 2 s each, partly inside the first requests.
    say "creating the radosgw pools"
    local pools=(.rgw.root default.rgw.log default.rgw.control default.rgw.meta default.rgw.buckets.index
      default.rgw.buckets.data default.rgw.buckets.non-ec)
    {
      for pool in "${pools[@]}"; do echo "osd pool create $pool 8 8 replicated"; done
      for pool in "${pools[@]}"; do echo "osd pool application enable $pool rgw"; done
    } | "${CEPH[@]}" >"$DIR/log/pools.out" 2>&1 || true
    [ "$("${CEPH[@]}" osd pool ls | grep -c rgw)" -eq 7 ] || fail "the radosgw pools were not created"
    touch "$DIR/.pools-made"
  fi
  if ! is_running "$DIR/run/client.rgw.a.pid" radosgw; then
    say "starting radosgw on 127.0.0.1:$PORT"
    radosgw -n client.rgw.a || fail "radosgw did not start"
  fi
  wait_until 120 "radosgw on 127.0.0.1:$PORT" rgw_answers
  if ! timeout 120 radosgw-admin -n client.admin user info --uid=custody-test >/dev/null 2>&1; then
    timeout 120 radosgw-admin -n client.admin user create --uid=custody-test --display-name="Custody tests" \
      --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >/dev/null || fail "radosgw-admin user create failed"
  fi
  touch "$DIR/.ready"
  print_env >"$DIR/env"
  say "S3 ready at http://127.0.0.1:$PORT (environment: Scripts/ceph-s3.sh env, or . $DIR/env)"
}

stop_daemon() {  # pid file, name
  is_running "$1" "$2" || { rm -f "$1"; return 0; }
  local pid
  pid=$(cat "$1")
  say "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do is_running "$1" "$2" || break; sleep 0.5; done
  is_running "$1" "$2" && kill -KILL "$pid" 2>/dev/null
  rm -f "$1"
}

stop() {
  stop_daemon "$DIR/run/client.rgw.a.pid" radosgw
  stop_daemon "$DIR/run/osd.0.pid" ceph-osd
  stop_daemon "$DIR/run/mon.a.pid" ceph-mon
  if [ "${CEPH_S3_PURGE:-0}" = 1 ]; then rm -rf "$DIR"; say "removed $DIR"; fi
}

print_env() {
  cat <<EOF
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export CUSTODY_TEST_S3=1
export CUSTODY_TEST_CEPH_DIR=$DIR
EOF
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) rgw_answers ;;
  env) print_env ;;
  *) echo "usage: Scripts/ceph-s3.sh start|stop|status|env" >&2; exit 64 ;;
esac
