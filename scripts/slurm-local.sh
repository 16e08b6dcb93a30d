#!/usr/bin/env bash
# A real multi-node Slurm cluster on this one machine, for sweepherd's tests and for trying
# `sweepherd submit` without a cluster.
#
#   scripts/slurm-local.sh start     install Slurm if missing, start the cluster, wait for idle nodes
#   scripts/slurm-local.sh stop      cancel its jobs and stop its daemons (only its own processes)
#   scripts/slurm-local.sh restart   stop, then start
#   scripts/slurm-local.sh status    exit 0 and show the nodes when it answers, exit 1 otherwise
#   scripts/slurm-local.sh env       print the `export` lines Slurm's commands need:
#                                    eval "$(scripts/slurm-local.sh env)"
#
# One slurmctld and N `slurmd -N nodeX` daemons on ports of 127.0.0.1, a private munged, fake
# GPUs (character devices named in gres.conf, so srun sets CUDA_VISIBLE_DEVICES), no systemd and
# no cgroups. Every node runs on this host: identify a node by $SLURMD_NODENAME, never hostname.
# Several clusters can share a machine with their own directory and ports.
#
# Settings (environment):
#   SLURM_LOCAL_DIR              cluster directory        (default /tmp/sweepherd-slurm)
#   SLURM_LOCAL_NODES            number of nodes          (default 4: node1..node4)
#   SLURM_LOCAL_CPUS             CPUs per node            (default 4; may exceed the real count)
#   SLURM_LOCAL_GPUS             fake GPUs per node       (default 2; 0 for none)
#   SLURM_LOCAL_MEM_MB           memory per node in MB    (default 2000)
#   SLURM_LOCAL_CTLD_PORT        slurmctld port           (default 6817)
#   SLURM_LOCAL_SLURMD_PORT_BASE port of node1; nodeK uses base+K-1 (default 17001)
#   SLURM_LOCAL_CRED_EXPIRE      seconds a requeued job waits before it restarts (default 5, min 5)
#   SLURM_LOCAL_START_TIMEOUT_S  how long `start` waits for idle nodes (default 30)
set -euo pipefail
# the daemons live in /usr/sbin, which a non-login PATH may lack
export PATH=$PATH:/usr/sbin:/sbin:/usr/bin:/bin

B=${SLURM_LOCAL_DIR:-/tmp/sweepherd-slurm}
B=${B%/}
N_NODES=${SLURM_LOCAL_NODES:-4}
N_CPUS=${SLURM_LOCAL_CPUS:-4}
N_GPUS=${SLURM_LOCAL_GPUS:-2}
MEM_MB=${SLURM_LOCAL_MEM_MB:-2000}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
PORT_BASE=${SLURM_LOCAL_SLURMD_PORT_BASE:-17001}
CRED_EXPIRE=${SLURM_LOCAL_CRED_EXPIRE:-5}
START_TIMEOUT_S=${SLURM_LOCAL_START_TIMEOUT_S:-30}
CONF=$B/etc/slurm.conf
MARKER=SLURM_LOCAL_CLUSTER_DIR

die() {
    echo "slurm-local: error: $*" >&2
    exit 1
}
say() { echo "slurm-local: $*" >&2; }

check_settings() {
    case $B in
        /*) ;;
        *) die "SLURM_LOCAL_DIR must be an absolute path, got '$B'" ;;
    esac
    [ "$B" != / ] || die "SLURM_LOCAL_DIR must not be /"
    local pair name value
    for pair in N_NODES:NODES N_CPUS:CPUS N_GPUS:GPUS MEM_MB:MEM_MB CTLD_PORT:CTLD_PORT \
        PORT_BASE:SLURMD_PORT_BASE CRED_EXPIRE:CRED_EXPIRE START_TIMEOUT_S:START_TIMEOUT_S; do
        name=${pair%%:*}
        value=${!name}
        [[ $value =~ ^[0-9]+$ ]] || die "SLURM_LOCAL_${pair#*:} must be a whole number, got '$value'"
    done
    [ "$N_NODES" -ge 1 ] || die "SLURM_LOCAL_NODES must be at least 1"
    [ "$N_CPUS" -ge 1 ] || die "SLURM_LOCAL_CPUS must be at least 1"
    [ "$CRED_EXPIRE" -ge 5 ] || die "SLURM_LOCAL_CRED_EXPIRE must be at least 5 (Slurm's minimum)"
}

# --- installation -----------------------------------------------------------------------------

have_slurm() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v sbatch >/dev/null && command -v munged >/dev/null
}

install_slurm() {
    have_slurm && return 0
    [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root:
    apt-get install --no-install-recommends slurmctld slurmd slurm-client munge"
    command -v apt-get >/dev/null || die "Slurm is not installed and this is not a Debian-like system (no apt-get)"
    say "installing Slurm from Debian packages (slurmctld slurmd slurm-client munge)"
    # Without a policy-rc.d the packages' postinst scripts would start the *system* munged.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local pkgs=(slurmctld slurmd slurm-client munge) rc=0
    if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
        apt-get update -q >&2 || rc=$?
    fi
    if [ "$rc" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 || {
            # stale package lists: refresh once and try again
            apt-get update -q >&2 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2
        } || rc=$?
    fi
    [ "$made_policy" = 1 ] && rm -f "$policy"
    [ "$rc" = 0 ] || die "apt-get could not install ${pkgs[*]} (exit $rc); see the output above"
    have_slurm || die "Slurm's daemons are still missing after installing ${pkgs[*]}"
}

# --- our own processes ------------------------------------------------------------------------

# Process ids of this cluster's daemons and job step daemons: a Slurm or munge program whose
# command line names this cluster's directory, or whose environment carries our marker.
own_pids() {
    local dir pid comm
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        [ "$pid" != $$ ] || continue
        comm=$(cat "$dir/comm" 2>/dev/null) || continue
        case $comm in
            munged | slurmctld | slurmd | slurmstepd | slurmscriptd) ;;
            *) continue ;;
        esac
        is_zombie "$pid" && continue
        if tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | grep -qF -- "$B/" ||
            tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qxF -- "$MARKER=$B"; then
            echo "$pid"
        fi
    done
}

# A zombie has exited; PID 1 may take seconds to reap it, so it counts as dead.
is_zombie() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*") "}
    [ "${stat%% *}" = Z ]
}

alive() { [ -d "/proc/$1" ] && ! is_zombie "$1"; }

# Send a signal to pids, then wait until all are gone or the deadline passes.
kill_and_wait() {
    local sig=$1 timeout_s=$2
    shift 2
    [ $# -gt 0 ] || return 0
    kill "-$sig" "$@" 2>/dev/null || true
    local deadline=$((SECONDS + timeout_s)) pid left
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} -eq 0 ] && return 0
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}

pid_from() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && echo "$pid"
}

# --- configuration ----------------------------------------------------------------------------

node_range() { if [ "$N_NODES" = 1 ]; then echo node1; else echo "node[1-$N_NODES]"; fi; }
port_range() {
    if [ "$N_NODES" = 1 ]; then echo "$PORT_BASE"; else echo "[$PORT_BASE-$((PORT_BASE + N_NODES - 1))]"; fi
}

write_slurm_conf() {
    local gres=""
    [ "$N_GPUS" -gt 0 ] && gres=" Gres=gpu:$N_GPUS"
    cat <<EOF
# generated by scripts/slurm-local.sh: a test cluster of $N_NODES slurmd daemons on one host
ClusterName=sweepherd-local
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# private munged; cred_expire is also how long a requeued job waits before it may start again
AuthInfo=socket=$B/munge/munge.socket,cred_expire=$CRED_EXPIRE
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool/slurmd-%n
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd-%n.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups and no systemd here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# look at pending jobs every second (defaults 30-60 s), so requeued jobs start promptly
SchedulerParameters=bf_interval=1,sched_interval=1
MpiDefault=none
# nodes may declare more CPUs than this machine has
SlurmdParameters=config_overrides
# no slurmdbd: sacct does not work; finished jobs stay visible to squeue for MinJobAge seconds
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$B/log/jobcomp.txt
MinJobAge=600
ReturnToService=2
KillWait=5
InactiveLimit=0
GresTypes=gpu
NodeName=$(node_range) NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(port_range) CPUs=$N_CPUS Sockets=1 CoresPerSocket=$N_CPUS ThreadsPerCore=1 RealMemory=$MEM_MB$gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

write_gres_conf() {
    if [ "$N_GPUS" -gt 0 ]; then
        local files="$B/dev/gpu0"
        [ "$N_GPUS" -gt 1 ] && files="$B/dev/gpu[0-$((N_GPUS - 1))]"
        echo "NodeName=$(node_range) Name=gpu File=$files"
    fi
}

# --- commands ---------------------------------------------------------------------------------

# Succeeds when this cluster's controller answers and all its nodes are up.
answers() {
    [ -f "$CONF" ] || return 1
    pid_from "$B/run/slurmctld.pid" >/dev/null || return 1
    local n_up
    n_up=$(SLURM_CONF=$CONF timeout 5 sinfo -h -N -r -o %N 2>/dev/null | sort -u | wc -l) || return 1
    [ "$n_up" -ge "$N_NODES" ]
}

log_tail() {
    local f
    for f in "$B"/munge/munged.log "$B"/log/slurmctld.log "$B"/log/slurmd-*.log; do
        [ -f "$f" ] || continue
        echo "--- last lines of $f" >&2
        # the MPI plugin lines are noise: Debian's build lists PMIx but does not ship it
        grep -vE 'pmix|MPI: Cannot' "$f" | tail -n 6 >&2
    done
}

cmd_start() {
    check_settings
    install_slurm
    if answers; then
        local want
        want=$(write_slurm_conf)
        if [ "$want" = "$(cat "$CONF")" ]; then
            say "already running ($B)"
            return 0
        fi
        say "settings changed; restarting"
    fi
    (cmd_stop) >/dev/null 2>&1 || die "could not stop the old cluster in $B; run: $0 stop"
    local t0=$SECONDS i
    # A fresh cluster every start: no jobs or node states carried over.
    rm -rf -- "${B:?}/state" "${B:?}/spool" "${B:?}/run" "${B:?}/log" "${B:?}/munge" "${B:?}/dev"
    mkdir -p "$B"/{etc,state,log,run,dev,munge}
    for i in $(seq 1 "$N_NODES"); do mkdir -p "$B/spool/slurmd-node$i"; done
    chmod 755 "$B" "$B/munge" # munged refuses a socket directory that is not a+x
    for ((i = 0; i < N_GPUS; i++)); do mknod "$B/dev/gpu$i" c 1 3; done
    write_slurm_conf >"$CONF"
    write_gres_conf >"$B/etc/gres.conf"
    head -c 1024 /dev/urandom >"$B/munge/munge.key"
    chmod 400 "$B/munge/munge.key"

    env "$MARKER=$B" munged --key-file="$B/munge/munge.key" --socket="$B/munge/munge.socket" \
        --pid-file="$B/munge/munged.pid" --log-file="$B/munge/munged.log" \
        --seed-file="$B/munge/munged.seed" || { log_tail; die "munged did not start"; }
    env "$MARKER=$B" slurmctld -f "$CONF" || { log_tail; die "slurmctld did not start"; }
    for i in $(seq 1 "$N_NODES"); do
        env "$MARKER=$B" slurmd -f "$CONF" -N "node$i" || { log_tail; die "slurmd for node$i did not start"; }
    done

    local deadline=$((SECONDS + START_TIMEOUT_S)) n_idle=0
    while :; do
        n_idle=$(SLURM_CONF=$CONF timeout 5 sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l) || n_idle=0
        [ "$n_idle" -ge "$N_NODES" ] && break
        if [ $SECONDS -ge $deadline ] || ! pid_from "$B/run/slurmctld.pid" >/dev/null; then
            log_tail
            (cmd_stop) >/dev/null 2>&1 || true
            die "only $n_idle of $N_NODES nodes became idle within ${START_TIMEOUT_S}s (logs above, under $B/log). If they say 'Address already in use', another cluster holds the ports: set SLURM_LOCAL_CTLD_PORT and SLURM_LOCAL_SLURMD_PORT_BASE."
        fi
        sleep 0.1
    done
    say "running: $N_NODES nodes x $N_CPUS CPUs x $N_GPUS GPUs in $B, started in $((SECONDS - t0))s"
    say "use it with: eval \"\$($0 env)\""
}

cmd_stop() {
    check_settings
    if [ -f "$CONF" ] && pid_from "$B/run/slurmctld.pid" >/dev/null && command -v scancel >/dev/null; then
        # Cancel every job first so batch scripts get their SIGTERM and step daemons clean up.
        SLURM_CONF=$CONF timeout 5 scancel --full --quiet --state=PENDING >/dev/null 2>&1 || true
        local jobs
        jobs=$(SLURM_CONF=$CONF timeout 5 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || jobs=""
        if [ -n "${jobs// /}" ]; then
            # shellcheck disable=SC2086  # job ids are words
            SLURM_CONF=$CONF timeout 5 scancel $jobs >/dev/null 2>&1 || true
            local deadline=$((SECONDS + 8))
            while [ $SECONDS -lt $deadline ] &&
                [ -n "$(SLURM_CONF=$CONF timeout 5 squeue -h -o %A 2>/dev/null)" ]; do
                sleep 0.1
            done
        fi
    fi
    local daemons=() pid f
    for f in "$B"/run/slurmd-*.pid "$B/run/slurmctld.pid"; do
        pid=$(pid_from "$f") && daemons+=("$pid")
    done
    # Check each pid is really ours before killing it (pid files outlive their processes).
    local own
    own=" $(own_pids | tr '\n' ' ') "
    local ours=()
    for pid in "${daemons[@]}"; do [[ $own == *" $pid "* ]] && ours+=("$pid"); done
    kill_and_wait TERM 10 "${ours[@]}" || kill_and_wait KILL 3 "${ours[@]}" || true
    pid=$(pid_from "$B/munge/munged.pid") && [[ $own == *" $pid "* ]] &&
        { kill_and_wait TERM 5 "$pid" || kill_and_wait KILL 3 "$pid" || true; }
    # Whatever is left of ours (step daemons, a daemon whose pid file was lost).
    mapfile -t left < <(own_pids)
    if [ ${#left[@]} -gt 0 ]; then
        kill_and_wait TERM 5 "${left[@]}" || kill_and_wait KILL 3 "${left[@]}" || true
    fi
    mapfile -t left < <(own_pids)
    [ ${#left[@]} -eq 0 ] || die "processes of the cluster in $B are still running: ${left[*]}"
    say "stopped ($B)"
}

cmd_status() {
    check_settings
    if answers; then
        SLURM_CONF=$CONF sinfo -N -o '%N %T %c %m %G'
        return 0
    fi
    say "not running ($B)"
    return 1
}

cmd_env() {
    check_settings
    printf 'export SLURM_CONF=%q\n' "$CONF"
    printf 'export SLURM_LOCAL_DIR=%q\n' "$B"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 start|stop|restart|status|env" >&2
        exit 2
        ;;
esac
