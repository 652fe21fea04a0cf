import { existsSync, readdirSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTarget } from "@switchyard/transport";
import { describeIf } from "../../transport-nats/src/test/nats";
import { cli } from "./test/fixture";
import { type Scenario, TARGETS, fillTarget, heartbeat } from "./test/scenario";

// Every command against SQLite AND NATS: the same scenario published through each driver's
// transport, the same expected numbers. What a transport cannot do is asked of its capabilities.
for (const kind of TARGETS) {
  describeIf(
    kind.unavailable ? { ok: false, reason: kind.unavailable } : { ok: true },
    `switchyard on ${kind.name}`,
    { tags: ["slow"] },
    () => {
      let scenario: Scenario;
      let cleanup: () => Promise<void>;
      let args: string[];
      const run = (command: readonly string[], env?: Record<string, string>) =>
        cli([...command, ...args], env ? { env } : {});

      beforeAll(async () => {
        const created = await kind.create("cli");
        cleanup = created.cleanup;
        scenario = await fillTarget(created.target);
        args = ["--transport", created.target];
      }, 60_000);
      afterAll(async () => {
        await scenario?.close();
        await cleanup?.();
      });

      describe("subscribers", () => {
        it("gives every subscriber's backlog with one definition of pending, in flight, retrying and dead", async () => {
          const result = await run(["subscribers", "--json"]);
          expect(result.code).toBe(0);
          const by = Object.fromEntries(
            (result.json().subscribers as { subscriber: string }[]).map((s) => [s.subscriber, s]),
          );
          expect(by.evaluator).toMatchObject({ lag: 0, pending: 0, inFlight: 0, retrying: 0 });
          expect(by.flaky).toMatchObject({ lag: 2, pending: 0, inFlight: 0, retrying: 2 });
          expect(by.slow).toMatchObject({ lag: 2, pending: 0, inFlight: 2, retrying: 0 });
          expect(by.idle).toMatchObject({ lag: 3, pending: 3, inFlight: 0, retrying: 0 });
          expect(by.promoter).toMatchObject({ lag: 0, dead: 2 });
          expect(by.notifier).toMatchObject({ lag: 0, dead: 2 });
        });

        it("filters by event type, and says when nothing receives it", async () => {
          const some = await run(["subscribers", "--type", "TRAINING_COMPLETED", "--json"]);
          expect(
            (some.json().subscribers as { subscriber: string }[]).map((s) => s.subscriber).sort(),
          ).toEqual(["evaluator", "flaky"]);
          const none = await run(["subscribers", "--type", "QUALITY_ALERT"]);
          expect(none.code).toBe(0);
          expect(none.stdout).toContain("No subscriber receives QUALITY_ALERT");
        });

        it("prints a table for people", async () => {
          const result = await run(["subscribers"]);
          expect(result.stdout).toMatch(/SUBSCRIBER\s+LAG\s+PENDING\s+IN FLIGHT\s+RETRYING\s+DEAD/);
          expect(result.stdout).toContain("6 subscribers.");
        });
      });

      it("stats counts events, the backlog, daemons and dead letters", async () => {
        const result = await run(["stats", "--json"]);
        expect(result.code).toBe(0);
        const report = result.json();
        expect(report.transport).toBe(kind.name);
        expect(report.events.total).toBe(scenario.published);
        expect(report.events.byType.DATA_SYNC_FAILED).toBe(2);
        expect(report.deliveries).toMatchObject({ lag: 7, pending: 3, inFlight: 2, retrying: 2 });
        expect(report.subscribers).toBe(6);
        expect(report.daemons).toBe(3);
        expect(report.deadLetters.depth).toBe(4);
      });

      describe("health", () => {
        it("is unhealthy on a stale heartbeat and a firing alert, degraded on a degraded daemon", async () => {
          const result = await run(["health", "--json"]);
          expect(result.code).toBe(1);
          const report = result.json();
          expect(report).toMatchObject({
            healthy: false,
            status: "unhealthy",
            transport: kind.name,
          });
          const status = Object.fromEntries(
            (report.checks as { check: string; status: string }[]).map((c) => [c.check, c.status]),
          );
          expect(status).toMatchObject({
            "daemon:trainer": "healthy",
            "daemon:evaluator": "unhealthy",
            "daemon:promoter": "degraded",
            subscribers: "healthy",
            backlog: "healthy",
            "dead-letters": "healthy",
            "alert:TRAINING_FAILED": "unhealthy",
          });
          const backlog = (report.checks as { check: string; value?: number }[]).find(
            (c) => c.check === "backlog",
          );
          expect(backlog?.value).toBe(7);
        });

        it("applies the limits it is given, durations with units", async () => {
          const result = await run([
            "health",
            "--max-pending",
            "6",
            "--max-dlq",
            "3",
            "--stale-after",
            "15m",
            "--json",
          ]);
          const status = Object.fromEntries(
            (result.json().checks as { check: string; status: string }[]).map((c) => [
              c.check,
              c.status,
            ]),
          );
          expect(status).toMatchObject({
            "daemon:evaluator": "healthy",
            backlog: "unhealthy",
            "dead-letters": "unhealthy",
          });
        });

        it("refuses a duration without a unit it knows, naming the flag", async () => {
          const result = await run(["health", "--stale-after", "soon"]);
          expect(result.code).toBe(2);
          expect(result.stderr).toContain("--stale-after");
        });

        it("redraws with --watch, once per interval", async () => {
          const stop = new AbortController();
          // Two frames at least, however long one check takes on this transport.
          setTimeout(() => stop.abort(), 2_500);
          const result = await cli(["health", "--watch", "250ms", ...args], {
            signal: stop.signal,
          });
          expect(result.stdout.match(/^--- /gm)?.length ?? 0).toBeGreaterThanOrEqual(2);
          expect(result.code).toBe(1);
        });
      });

      it.each([["subscribers"], ["daemons"]])("%s redraws with --watch", async (command) => {
        const stop = new AbortController();
        setTimeout(() => stop.abort(), 2_500);
        const result = await cli([command, "--watch", "250ms", ...args], { signal: stop.signal });
        expect(result.code).toBe(0);
        expect(result.stdout.match(/^--- /gm)?.length ?? 0).toBeGreaterThanOrEqual(2);
      });

      it("daemons lists every heartbeat with its restarts", async () => {
        const result = await run(["daemons", "--json"]);
        expect(result.code).toBe(0);
        const daemons = result.json().daemons as { daemon: string; restarts: number }[];
        expect(daemons.map((d) => d.daemon).sort()).toEqual(["evaluator", "promoter", "trainer"]);
        expect(daemons.every((d) => d.restarts === 1)).toBe(true);
        const text = await run(["daemons"]);
        expect(text.stdout).toMatch(/DAEMON\s+STATE\s+HEALTH/);
      });

      describe("events", () => {
        it("list filters by type, subject and limit, newest first", async () => {
          const byType = await run(["events", "list", "--type", "TRAINING_COMPLETED", "--json"]);
          expect(byType.code).toBe(0);
          expect((byType.json().events as unknown[]).length).toBe(2);
          const bySubject = await run(["events", "list", "--subject", "hex8_2p", "--json"]);
          const events = bySubject.json().events as { seq: number; subject: string }[];
          expect(events).toHaveLength(7);
          expect(events[0]!.seq).toBeGreaterThan(events[6]!.seq);
          const limited = await run(["events", "list", "--limit", "3", "--json"]);
          expect((limited.json().events as unknown[]).length).toBe(3);
        });

        it("list suggests the closest event type for a typo", async () => {
          const result = await run(["events", "list", "--type", "TRAINING_COMPLETE"]);
          expect(result.code).toBe(2);
          expect(result.stderr).toContain("TRAINING_COMPLETED");
        });

        it("trace shows each subscriber's delivery, what caused the event and what it caused", async () => {
          const result = await run(["events", "trace", scenario.ids.training, "--json"]);
          expect(result.code).toBe(0);
          const report = result.json();
          expect(report.event.id).toBe(scenario.ids.training);
          expect(report.causes).toHaveLength(3);
          const state = Object.fromEntries(
            (report.deliveries as { subscriber: string; state: string }[]).map((d) => [
              d.subscriber,
              d.state,
            ]),
          );
          expect(state).toEqual({ evaluator: "acked", flaky: "retrying" });
          expect(report.caused[0].event.id).toBe(scenario.ids.evaluation);
          expect(report.caused[0].caused[0].event.id).toBe(scenario.ids.promotion);
          const promoter = (
            report.caused[0].deliveries as { subscriber: string; state: string }[]
          ).find((d) => d.subscriber === "promoter");
          expect(promoter?.state).toBe("dead");
          const text = await run(["events", "trace", scenario.ids.training]);
          expect(text.stdout).toContain("Caused:");
          expect(text.stdout).toContain("EVALUATION_COMPLETED");
        });

        it("trace lists the dead letters of a dead-lettered event", async () => {
          const result = await run(["events", "trace", scenario.ids.evaluation, "--json"]);
          const dead = result.json().deadLetters as { subscriber: string }[];
          expect(dead.map((d) => d.subscriber)).toEqual(["promoter"]);
        });

        it("trace shows the timeline of a delivery that retried and of one dead-lettered", async () => {
          expect(scenario.driver.capabilities.history).toBe(true);
          const text = await run(["events", "trace", scenario.ids.training]);
          expect(text.stdout).toContain("Timeline of flaky:");
          expect(text.stdout).toMatch(
            /retry scheduled +1 +\d+[hm]\b.*Error: evaluation cluster unreachable/,
          );
          const json = await run(["events", "trace", scenario.ids.evaluation, "--json"]);
          const promoter = (
            json.json().deliveries as { subscriber: string; history: { kind: string }[] }[]
          ).find((d) => d.subscriber === "promoter");
          expect(promoter?.history.map((step) => step.kind)).toContain("dead_lettered");
          const dead = await run(["events", "trace", scenario.ids.evaluation]);
          expect(dead.stdout).toMatch(/dead-lettered .*unrecoverable/);
        });

        it("trace says when no event has that id", async () => {
          const result = await run(["events", "trace", "no-such-event"]);
          expect(result.code).toBe(2);
          expect(result.stderr).toContain("No event with id no-such-event");
        });

        it("tail prints stored events from --since and stops after --count", async () => {
          const result = await run([
            "events",
            "tail",
            "--since",
            "1h",
            "--count",
            "2",
            "--type",
            "NEW_GAMES_AVAILABLE",
            "--json",
          ]);
          expect(result.code).toBe(0);
          const lines = result.stdout.trim().split("\n");
          expect(lines).toHaveLength(2);
          expect(lines.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual([
            "NEW_GAMES_AVAILABLE",
            "NEW_GAMES_AVAILABLE",
          ]);
        }, 10_000);
      });

      describe("pipeline verify", () => {
        it("passes when every stage flowed for the config key", async () => {
          const result = await run(["pipeline", "verify", "hex8_2p", "--json"]);
          expect(result.code).toBe(0);
          expect(result.json()).toMatchObject({ ok: true, missing: [] });
        });

        it("fails and names the missing stage (config key from the payload)", async () => {
          const result = await run(["pipeline", "verify", "sq8_4p", "--json"]);
          expect(result.code).toBe(1);
          expect(result.json().missing).toEqual(["MODEL_DISTRIBUTION_COMPLETE"]);
        });
      });

      describe("monitor", () => {
        it("throughput counts the events of the window", async () => {
          const result = await run(["monitor", "throughput", "--window", "15m", "--json"]);
          expect(result.code).toBe(0);
          expect(result.json().total).toBe(scenario.published);
        });

        it("failures ranks the failing types and names the subscribers failing now", async () => {
          const result = await run(["monitor", "failures", "--json"]);
          expect(result.code).toBe(0);
          const report = result.json();
          expect(report.types).toEqual([
            { type: "DATA_SYNC_FAILED", deadLetters: 2 },
            { type: "EVALUATION_COMPLETED", deadLetters: 2 },
          ]);
          expect(report.subscribers).toContainEqual({ subscriber: "flaky", retrying: 2, dead: 0 });
        });

        it("depth gives the backlog per subscriber", async () => {
          const result = await run(["monitor", "depth", "--json"]);
          expect(result.json().total).toBe(7);
        });
      });

      it("audit runs where the transport has an ack floor, and is 'not supported' elsewhere", async () => {
        const result = await run(["audit", "--json"]);
        const auditable =
          typeof (scenario.driver.transport() as { audit?: unknown }).audit === "function";
        if (auditable) {
          expect(result.code).toBe(0);
          expect(result.json().gaps).toBe(0);
        } else {
          expect(result.code).toBe(2);
          expect(result.stderr).toContain(`audit is not supported on ${kind.name}`);
        }
      });

      describe("dlq", () => {
        it("lists what still needs handling, and says that no retry daemon runs", async () => {
          const result = await run(["dlq", "list", "--json"]);
          expect(result.code).toBe(0);
          const report = result.json();
          expect(report.deadLetters).toHaveLength(4);
          expect(report.retryDaemon.running).toBe(false);
          const bySubscriber = await run(["dlq", "list", "--subscriber", "notifier", "--json"]);
          expect(bySubscriber.json().deadLetters).toHaveLength(2);
          const text = await run(["dlq", "list", "--subscriber", "notifier"]);
          expect(text.stdout).toMatch(/ID\s+LAST FAILED\s+TYPE/);
          expect(text.stdout).toContain(
            "No retry daemon is running (no heartbeat of a daemon named dlq_retry): nothing retries them",
          );
        });

        it("says a retry daemon runs once one writes fresh heartbeats", async () => {
          const sink = scenario.driver.heartbeatSink();
          await sink.write(
            heartbeat("dlq_retry", 0, { healthy: true, status: "healthy", message: "ok" }),
          );
          let report: { retryDaemon: { running: boolean } } | undefined;
          for (let i = 0; i < 50 && !report?.retryDaemon.running; i++) {
            report = (await run(["dlq", "list", "--json"])).json();
            if (!report?.retryDaemon.running) await new Promise((r) => setTimeout(r, 100));
          }
          expect(report?.retryDaemon.running).toBe(true);
          const text = await run(["dlq", "list", "--subscriber", "notifier"]);
          expect(text.stdout).toContain("A retry daemon is running (dlq_retry)");
          await sink.write(
            heartbeat(
              "dlq_retry",
              0,
              { healthy: true, status: "healthy", message: "ok" },
              "stopped",
            ),
          );
        });

        it("reports depth by status, reason, type and subscriber", async () => {
          const result = await run(["dlq", "stats", "--json"]);
          expect(result.code).toBe(0);
          expect(result.json()).toMatchObject({
            depth: 4,
            byType: { EVALUATION_COMPLETED: 2, DATA_SYNC_FAILED: 2 },
            bySubscriber: { promoter: 2, notifier: 2 },
          });
        });

        it("inspects one record, and names an unknown id", async () => {
          const list = await run(["dlq", "list", "--subscriber", "promoter", "--json"]);
          const id = (list.json().deadLetters as { id: string }[])[0]!.id;
          const result = await run(["dlq", "inspect", id, "--json"]);
          expect(result.code).toBe(0);
          expect(result.json().deadLetter).toMatchObject({
            id,
            subscriber: "promoter",
            reason: "unrecoverable",
          });
          const unknown = await run(["dlq", "inspect", "999999"]);
          expect(unknown.code).toBe(2);
          expect(unknown.stderr).toContain("No dead letter with id 999999");
        });

        it("replays one dead letter, and needs --again to replay it once more", async () => {
          const list = await run(["dlq", "list", "--subscriber", "notifier", "--json"]);
          const id = (list.json().deadLetters as { id: string }[])[0]!.id;
          const dry = await run(["dlq", "replay", id, "--dry-run", "--json"]);
          expect(dry.code).toBe(0);
          expect(dry.json().wouldReplay).toEqual([id]);
          const first = await run(["dlq", "replay", id, "--json"]);
          expect(first.code).toBe(0);
          expect(first.json().replayed).toEqual([id]);
          const twice = await run(["dlq", "replay", id]);
          expect(twice.code).toBe(1);
          expect(twice.stdout).toContain("--again");
          const again = await run(["dlq", "replay", id, "--again", "--json"]);
          expect(again.code).toBe(0);
          expect(again.json().replayed).toEqual([id]);
        });

        it("lists, replays and purges the dead letters of one event (--event)", async () => {
          const promoter = (await run(["dlq", "list", "--subscriber", "promoter", "--json"])).json()
            .deadLetters as { id: string; eventId: string }[];
          const [one, other] = promoter;
          expect(one!.eventId).not.toBe(other!.eventId);
          const list = await run(["dlq", "list", "--event", one!.eventId, "--json"]);
          expect(list.code).toBe(0);
          expect((list.json().deadLetters as { id: string }[]).map((d) => d.id)).toEqual([one!.id]);
          const dry = await run(["dlq", "replay", "--event", one!.eventId, "--dry-run", "--json"]);
          expect(dry.code).toBe(0);
          expect(dry.json().wouldReplay).toEqual([one!.id]);
          const refused = await run(["dlq", "purge", "--event", other!.eventId]);
          expect(refused.code).toBe(2);
          expect(refused.stderr).toContain("1 matching dead letter ");
          const none = await run(["dlq", "list", "--event", "no-such-event"]);
          expect(none.stdout).toContain("No dead letters match.");
          expect((await run(["dlq", "replay", one!.id, "--event", one!.eventId])).code).toBe(2);
        });

        it("needs an id or a filter, not both", async () => {
          expect((await run(["dlq", "replay"])).code).toBe(2);
          expect((await run(["dlq", "replay", "1", "--type", "MODEL_PROMOTED"])).code).toBe(2);
        });

        it("refuses to purge without --yes, then purges with it (keeping --keep backups)", async () => {
          const refused = await run(["dlq", "purge", "--subscriber", "promoter"]);
          expect(refused.code).toBe(2);
          expect(refused.stderr).toContain("2 matching dead letters");
          const purged = await run([
            "dlq",
            "purge",
            "--subscriber",
            "promoter",
            "--yes",
            "--keep",
            "1",
            "--json",
          ]);
          expect(purged.code).toBe(0);
          expect(purged.json().count).toBe(2);
          if (scenario.driver.capabilities.backup) {
            const backup = purged.json().backup as string;
            expect(existsSync(backup)).toBe(true);
          }
          const left = await run(["dlq", "list", "--subscriber", "promoter", "--json"]);
          expect(left.json().deadLetters).toHaveLength(0);
        });
      });

      describe("queue", () => {
        it("backs up where the transport can, keeping the newest --keep, else says it is not supported", async () => {
          const first = await run(["queue", "backup", "--keep", "2", "--json"]);
          if (!scenario.driver.capabilities.backup) {
            expect(first.code).toBe(2);
            expect(first.stderr).toContain(`queue backup is not supported on ${kind.name}`);
            return;
          }
          expect(first.code).toBe(0);
          const path = first.json().backup as string;
          expect(existsSync(path)).toBe(true);
          await run(["queue", "backup", "--keep", "2"]);
          await run(["queue", "backup", "--keep", "2"]);
          const kept = readdirSync(dirname(path)).filter((f) => f.endsWith(".bak"));
          expect(kept.length).toBe(2);
        });

        it("refuses to clear without --yes; clears one subscriber's backlog with it where supported", async () => {
          const refused = await run(["queue", "clear", "--pending", "--subscriber", "idle"]);
          if (!scenario.driver.capabilities.clearPending) {
            expect(refused.code).toBe(2);
            expect(refused.stderr).toContain(`queue clear is not supported on ${kind.name}`);
            return;
          }
          expect(refused.code).toBe(2);
          expect(refused.stderr).toContain("3 unsettled deliveries");
          const cleared = await run([
            "queue",
            "clear",
            "--pending",
            "--subscriber",
            "idle",
            "--yes",
            "--json",
          ]);
          expect(cleared.code).toBe(0);
          expect(cleared.json().count).toBe(3);
          const after = await run(["subscribers", "--json"]);
          const idle = (after.json().subscribers as { subscriber: string; lag: number }[]).find(
            (s) => s.subscriber === "idle",
          );
          expect(idle?.lag).toBe(0);
        });
      });

      it("reads the target from $SWITCHYARD_TRANSPORT", async () => {
        const result = await cli(["subscribers", "--json"], {
          env: { SWITCHYARD_TRANSPORT: scenario.target },
        });
        expect(result.code).toBe(0);
        expect(result.json().subscribers).toHaveLength(6);
        expect(parseTarget(scenario.target).scheme).toBe(kind.name);
      });
    },
  );
}
