// The "your own catalog" guide promises that a team's catalog needs no type arguments. The docs
// test runs its example; this one compiles it, strictly, against the sources, and fails on any
// type error, any explicit type argument (`Foo<…>`, `f<…>()`, `extends Base<…>`) in it, and any
// handler parameter left `any` (inferred from nothing) instead of typed from the catalog.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { codeBlocks } from "./readme-check.js";

const root = join(import.meta.dirname, "..");
const guide = join(root, "docs", "own-catalog.md");

/** Type errors and explicit type arguments of `code`, compiled as a module of event-schema (zod resolves there). */
function check(code: string): { errors: string[]; typeArguments: string[]; untyped: string[] } {
  const file = join(root, "packages", "event-schema", "guide-example.ts");
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, "tsconfig.base.json"),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
  )!;
  const host = ts.createCompilerHost(config.options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, ...rest) =>
    name === file
      ? ts.createSourceFile(name, code, ts.ScriptTarget.ES2022, true)
      : getSourceFile(name, ...rest);
  host.fileExists = (name) => name === file || fileExists(name);
  host.readFile = (name) => (name === file ? code : readFile(name));
  const program = ts.createProgram([file], { ...config.options, noEmit: true }, host);
  const source = program.getSourceFile(file)!;
  const lineOf = (node: ts.Node) =>
    source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;

  const errors = ts
    .getPreEmitDiagnostics(program, source)
    .map(
      (d) =>
        `line ${d.start === undefined ? "?" : source.getLineAndCharacterOfPosition(d.start).line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`,
    );

  const checker = program.getTypeChecker();
  const typeArguments: string[] = [];
  const untyped: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isParameter(node) &&
      !node.type &&
      checker.getTypeAtLocation(node).flags & ts.TypeFlags.Any
    )
      untyped.push(`line ${lineOf(node)}: ${node.getText(source)}`);
    const args =
      ts.isTypeReferenceNode(node) ||
      ts.isExpressionWithTypeArguments(node) ||
      ts.isCallExpression(node) ||
      ts.isNewExpression(node)
        ? node.typeArguments
        : undefined;
    if (args?.length) typeArguments.push(`line ${lineOf(node)}: ${node.getText(source)}`);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { errors, typeArguments, untyped };
}

describe("the own-catalog guide's example", { tags: ["slow"] }, () => {
  const [example] = codeBlocks(readFileSync(guide, "utf8")).filter((block) => block.runnable);

  it("compiles under the strict settings, with no explicit type argument and every handler parameter typed", () => {
    expect(example, "docs/own-catalog.md has a runnable ```ts example").toBeDefined();
    expect(check(example!.code)).toEqual({ errors: [], typeArguments: [], untyped: [] });
  });

  it("is caught when it spells out a type argument or breaks the catalog's contract", () => {
    const spelled = check(
      [
        `import { defineCatalog, defineEvent, type EventOf } from "@switchyard/event-schema";`,
        `import { z } from "zod";`,
        `const c = defineCatalog([defineEvent({ type: "A_B", description: "d", data: z.looseObject({ n: z.number() }) })]);`,
        `const ok: EventOf<"A_B", typeof c>["data"] = { n: 1 };`,
        `const bad: EventOf<"A_B", typeof c>["data"] = {};`,
        `const loose = [1].map((x: any) => x).map((y) => y);`,
        `export { ok, bad, loose };`,
      ].join("\n"),
    );
    expect(spelled.typeArguments).toHaveLength(2);
    expect(spelled.errors).toEqual([expect.stringMatching(/^line 5: Property 'n' is missing/)]);
    expect(spelled.untyped).toEqual(["line 6: y"]);
  });
});
