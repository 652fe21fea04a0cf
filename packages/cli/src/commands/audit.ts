import type { Command } from "commander";
import type { AuditReport } from "@switchyard/transport";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  requireCapability,
  withCommonOptions,
} from "../context";
import { ExitCode, type Output, plural } from "../output";

interface AuditOptions extends CommonOptions {
  readonly subscriber?: string;
  readonly repair?: boolean;
}

/**
 * `switchyard audit`: compare what the log holds with what each durable subscriber acknowledged
 * (the driver's `admin().audit()`), list events a subscriber's ack floor passed without handling
 * them, and with `--repair` hand them back. Exit 1 when a gap is found. `--json` prints the
 * driver's `AuditReport`. A driver whose `capabilities.audit` is false (SQLite, memory: each
 * delivery is one row, with no ack floor to audit) gets "not supported".
 */
export function registerAudit(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("audit")
      .description(
        "Find events no subscriber will ever get — an ack floor past events that were never handled (needs receipts: true), or a consumer ahead of the log after a crash. Transports with an ack floor only (NATS JetStream). Exit 1 on a gap.",
      )
      .option("--subscriber <name>", "only this subscriber")
      .option("--repair", "hand every unhandled event back to its subscriber (same id)"),
  );
  examples(command, [
    [
      "switchyard audit --transport nats://127.0.0.1:4222/SWITCHYARD",
      "did a crash make any subscriber skip events?",
    ],
    [
      "switchyard audit --transport nats://127.0.0.1:4222/SWITCHYARD --subscriber evaluator --repair",
      "hand the skipped events back to evaluator",
    ],
  ]);
  command.action(
    action<AuditOptions>(runtime, async ({ opts, out, driver }) => {
      const opened = await driver({ readOnly: false });
      requireCapability(opened, "audit", "audit");
      const report = await opened.admin().audit({
        ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
        repair: opts.repair === true,
        ...(runtime.signal ? { signal: runtime.signal } : {}),
      });
      print(report, out, opts);
      return report.gaps > 0 && opts.repair !== true ? ExitCode.failed : ExitCode.ok;
    }),
  );
}

function print(report: AuditReport, out: Output, opts: AuditOptions): void {
  out.data(report);
  if (report.consumers.length === 0) {
    out.line(
      `No durable Switchyard subscribers on stream ${report.stream}${opts.subscriber ? ` named ${opts.subscriber}` : ""}.`,
    );
    return;
  }
  out.table(
    [
      "subscriber",
      "type",
      "ack floor",
      "delivered",
      "ack pending",
      "pending",
      "unhandled",
      "ahead",
    ],
    report.consumers.map((c) => [
      c.subscriber,
      c.type,
      c.ackFloor,
      c.delivered,
      c.ackPending,
      c.pending,
      c.unhandled === undefined ? "?" : c.unhandled.length,
      c.aheadOfStream ? "yes" : "",
    ]),
  );
  for (const c of report.consumers)
    for (const u of (c.unhandled ?? []).slice(0, 20))
      out.line(`  ${c.subscriber}: ${u.type} ${u.id} (stream seq ${u.seq}) was never handled`);
  out.line();
  if (!report.receipts)
    out.line(
      `No receipts for stream ${report.stream}: only consumers ahead of the stream can be found. ` +
        `Start the transports with { receipts: true } to name skipped events.`,
    );
  if (report.retention !== "limits")
    out.line(
      `Stream ${report.stream} has retention "${report.retention}": events below an ack floor are removed, so a skipped one cannot be named or handed back. Use "limits".`,
    );
  out.line(
    report.gaps === 0
      ? `No gaps on stream ${report.stream} (sequences ${report.firstSeq}–${report.lastSeq}).`
      : `${plural(report.gaps, "gap")} on stream ${report.stream}` +
          (report.requeued > 0
            ? `; ${plural(report.requeued, "event")} handed back.`
            : "; run again with --repair to hand the events back."),
  );
}
