import type { Command } from "commander";
import { type NatsAudit, natsTransport } from "@switchyard/transport-nats";
import {
  type CommonOptions,
  type Runtime,
  type TransportOptions,
  action,
  examples,
  natsSourceOf,
  transportOf,
  withCommonOptions,
  withTransportOptions,
} from "../context";
import { onStream, withJetStream } from "../nats";
import { CliError, ExitCode, type Output, plural } from "../output";

interface AuditOptions extends CommonOptions, TransportOptions {
  readonly subscriber?: string;
  readonly repair?: boolean;
}

/**
 * `switchyard audit --transport nats`: compare what the stream holds with what each durable
 * subscriber acknowledged (`NatsTransport.audit`), list events a subscriber's ack floor passed
 * without handling them, and with `--repair` hand them back. Exit code 1 when a gap is found.
 */
export function registerAudit(program: Command, runtime: Runtime): void {
  const command = withTransportOptions(
    "events",
    withCommonOptions(
      program
        .command("audit")
        .description(
          "NATS JetStream: find events no subscriber will ever get — an ack floor past events that were never handled (needs receipts: true), or a consumer ahead of the stream after a crash. Exit 1 on a gap.",
        )
        .option("--subscriber <name>", "only this subscriber")
        .option("--repair", "hand every unhandled event back to its subscriber (same id)"),
    ),
  );
  examples(command, [
    ["switchyard audit --transport nats", "did a crash make any subscriber skip events?"],
    [
      "switchyard audit --transport nats --subscriber evaluator --repair",
      "hand the skipped events back to evaluator",
    ],
  ]);
  command.action(
    action<AuditOptions>(runtime, async ({ opts, out }) => {
      if (transportOf(opts) !== "nats")
        throw new CliError(
          "USAGE",
          "audit checks NATS JetStream consumers; pass --transport nats (the SQLite queue keeps a row per delivery, see `switchyard subscribers`).",
        );
      const source = natsSourceOf(opts);
      const report = await withJetStream(source, (link) =>
        onStream(link, source, async () => {
          // The transport on this connection: the stream exists (checked above), nothing is created.
          const transport = natsTransport({
            connection: link.nc,
            stream: source.stream,
            prefix: source.prefix,
          });
          try {
            return await transport.audit({
              ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
              repair: opts.repair === true,
            });
          } finally {
            await transport.close();
          }
        }),
      );
      print(report, out, opts);
      return report.gaps > 0 && opts.repair !== true ? ExitCode.failed : ExitCode.ok;
    }),
  );
}

function print(report: NatsAudit, out: Output, opts: AuditOptions): void {
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
