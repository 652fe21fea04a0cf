import type { Command } from "commander";
import type { Transport } from "@switchyard/transport";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  unsupported,
  withCommonOptions,
} from "../context";
import { ExitCode, type Output, plural } from "../output";

interface AuditOptions extends CommonOptions {
  readonly subscriber?: string;
  readonly repair?: boolean;
}

/**
 * What `switchyard audit --json` prints: the report of the transport's own `audit()` (a log
 * whose consumers keep an ack floor can pass events no subscriber handled).
 */
export interface AuditReport {
  readonly stream: string;
  readonly retention: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly receipts: boolean;
  readonly consumers: readonly {
    readonly subscriber: string;
    readonly type: string;
    readonly ackFloor: number;
    readonly delivered: number;
    readonly ackPending: number;
    readonly pending: number;
    readonly aheadOfStream: boolean;
    readonly unhandled:
      readonly { readonly seq: number; readonly id: string; readonly type: string }[] | undefined;
  }[];
  readonly gaps: number;
  readonly requeued: number;
}

/** A transport that can audit its consumers' ack floors against what was handled. */
interface Auditable extends Transport {
  audit(options: { readonly subscriber?: string; readonly repair?: boolean }): Promise<AuditReport>;
}

function isAuditable(transport: Transport): transport is Auditable {
  return typeof (transport as Partial<Auditable>).audit === "function";
}

/**
 * `switchyard audit`: compare what the log holds with what each durable subscriber acknowledged
 * (the transport's `audit()`), list events a subscriber's ack floor passed without handling them,
 * and with `--repair` hand them back. Exit 1 when a gap is found. Transports whose deliveries
 * are one row each (SQLite) have no ack floor to audit: "not supported".
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
      const transport = opened.transport();
      if (!isAuditable(transport)) throw unsupported(opened, "audit");
      const report = await transport.audit({
        ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
        repair: opts.repair === true,
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
