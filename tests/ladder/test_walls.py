"""The wall rules name the right wall on evidence recorded from real runs on this project's
box (tests/ladder/fixtures, recorded by `c10m-ladder record-fixture KIND`), and each rule
fires on its own threshold and not below it."""
import copy
import glob
import json
import os
import unittest

import ladder_test_util as util
from ladder import walls


class RecordedFixtures(unittest.TestCase):
    def test_each_fixture_names_its_wall(self):
        paths = sorted(glob.glob(os.path.join(util.FIXTURES, "*.json")))
        kinds = {os.path.basename(p)[:-5] for p in paths}
        self.assertTrue({"emfile", "cpu", "memory", "ports", "client"} <= kinds, kinds)
        for p in paths:
            with open(p) as f:
                fx = json.load(f)
            with self.subTest(fixture=fx["kind"]):
                w = walls.name_wall(fx["evidence"])
                self.assertEqual(w["name"], fx["expected_wall"], w)
                self.assertTrue(w["evidence"], "a named wall shows its evidence")
                self.assertIn(w["name"], w["checked"])

    def test_the_emfile_run_would_not_be_named_without_its_emfile_evidence(self):
        with open(os.path.join(util.FIXTURES, "emfile.json")) as f:
            ev = json.load(f)["evidence"]
        ev = dict(ev, server_emfile=0, server_emfile_log=0, client_emfile=0)
        self.assertNotEqual(walls.name_wall(ev)["name"], "fd limit")

    def test_memory_fixture_shows_tcp_memory_pressure(self):
        with open(os.path.join(util.FIXTURES, "memory.json")) as f:
            w = walls.name_wall(json.load(f)["evidence"])
        self.assertIn("tcp_mem", w["detail"])


BASE = {"cores": 2, "box_busy_cores": 0.5, "server_cores": 0.2, "client_cores": 0.2,
        "softirq_cores": 0.05, "server_procs": 1, "client_procs": 1, "slo_us": 5000, "p99_us": 9000,
        "mem_total": 24 << 30, "mem_available_min": 20 << 30, "tcp_mem_thresholds": [100, 200, 300]}


class Rules(unittest.TestCase):
    def name(self, **kw):
        return walls.name_wall(dict(copy.deepcopy(BASE), **kw))["name"]

    def test_nothing_fires_on_a_quiet_box(self):
        w = walls.name_wall(dict(BASE))
        self.assertEqual(w["name"], "not identified")
        self.assertEqual(w["checked"], [n for n, _ in walls.RULES])

    def test_thresholds(self):
        self.assertEqual(self.name(box_busy_cores=1.8), "CPU")
        self.assertEqual(self.name(box_busy_cores=1.79), "not identified")
        self.assertEqual(self.name(server_cores=0.95, server_core_limit=1), "CPU")
        self.assertEqual(self.name(tcp_mem_pressure=1), "memory")
        self.assertEqual(self.name(tcp_mem_pages_peak=200), "memory")
        self.assertEqual(self.name(mem_available_min=1 << 30), "memory")
        self.assertEqual(self.name(budget_sheds=3), "memory")
        self.assertEqual(self.name(listen_overflows=5), "listen queue")
        self.assertEqual(self.name(client_eaddrnotavail=1), "ports")
        self.assertEqual(self.name(max_conns_per_srcip=16000, even_ports=14116,
                                   perf_top=[{"pct": 9.0, "sym": "__inet_check_established", "comm": "x",
                                              "dso": "[kernel]"}]), "ports")
        self.assertEqual(self.name(max_conns_per_srcip=10000, even_ports=14116,
                                   perf_top=[{"pct": 9.0, "sym": "__inet_check_established", "comm": "x",
                                              "dso": "[kernel]"}]), "not identified")
        self.assertEqual(self.name(sockets_established=2_000_000, ehash_buckets=262_144,
                                   perf_top=[{"pct": 13.8, "sym": "__inet_lookup_established", "comm": "x",
                                              "dso": "[kernel]"}]), "established hash")
        self.assertEqual(self.name(client_behind=True, client_behind_cause="busy loop"), "load client")
        self.assertEqual(self.name(retrans_per_frame=0.05), "retransmits")

    def test_scheduler_needs_many_processes_and_wakeups(self):
        many = dict(server_procs=52, client_procs=51, ctx_per_frame=4.2, client_behind=True,
                    client_behind_cause="starved by the scheduler")
        self.assertEqual(self.name(**many), "scheduler")
        self.assertEqual(self.name(**dict(many, server_procs=2, client_procs=1)), "load client")

    def test_order_fd_before_cpu_before_client(self):
        self.assertEqual(self.name(server_emfile=3, box_busy_cores=2.0), "fd limit")
        self.assertEqual(self.name(box_busy_cores=2.0, client_behind=True, client_behind_cause="busy loop"), "CPU")

    def test_cpu_names_the_side(self):
        w = walls.name_wall(dict(BASE, box_busy_cores=2.0, server_cores=1.5, client_cores=0.3))
        self.assertIn("server", w["detail"])
        w = walls.name_wall(dict(BASE, box_busy_cores=2.0, server_cores=0.3, client_cores=1.5))
        self.assertIn("client", w["detail"])


if __name__ == "__main__":
    util.main_or_skip()
