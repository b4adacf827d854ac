#!/usr/bin/env bash
# Prints the host record every result is stamped with (JSON): kernel, CPU, cores, memory,
# fd limits, the network sysctls that bound the ladder, compiler, git commit.
set -u
sysctl_val() { cat "/proc/sys/${1//.//}" 2>/dev/null | tr '\t' ' ' || echo unknown; }
cat <<JSON
{
  "date": "$(date -u +%FT%TZ)",
  "kernel": "$(uname -r)",
  "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')",
  "cores": $(nproc),
  "mem_total_kib": $(awk '/MemTotal/ {print $2}' /proc/meminfo),
  "ulimit_n_soft": "$(ulimit -Sn)",
  "ulimit_n_hard": "$(ulimit -Hn)",
  "ip_local_port_range": "$(sysctl_val net.ipv4.ip_local_port_range)",
  "tcp_tw_reuse": "$(sysctl_val net.ipv4.tcp_tw_reuse)",
  "somaxconn": "$(sysctl_val net.core.somaxconn)",
  "tcp_max_syn_backlog": "$(sysctl_val net.ipv4.tcp_max_syn_backlog)",
  "rmem_max": "$(sysctl_val net.core.rmem_max)",
  "wmem_max": "$(sysctl_val net.core.wmem_max)",
  "tcp_rmem": "$(sysctl_val net.ipv4.tcp_rmem)",
  "tcp_wmem": "$(sysctl_val net.ipv4.tcp_wmem)",
  "pid_max": "$(sysctl_val kernel.pid_max)",
  "max_map_count": "$(sysctl_val vm.max_map_count)",
  "compiler": "$(g++ --version | head -n1)",
  "git_commit": "$(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
}
JSON
