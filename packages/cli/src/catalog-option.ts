import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { type AnyCatalog, isCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { CliError } from "./output";

/** The environment variable naming the catalog module when `--catalog` is not given. */
export const CATALOG_ENV = "SWITCHYARD_CATALOG";

const TYPESCRIPT = /\.[cm]?tsx?$/;
const PATH_LIKE = /^(?:\.{1,2}[\\/]|[\\/]|[A-Za-z]:[\\/])/;

/** Add `--catalog <module>` to a command that reads event types, alert rules or pipelines. */
export function withCatalogOption(command: Command): Command {
  return command.option(
    "--catalog <module>",
    `module whose \`catalog\` export (else default export) is the catalog in use: a .js/.mjs path, a .ts path when run through tsx, or a package name; append #name for another export (default: $${CATALOG_ENV}, else the built-in pipeline catalog)`,
  );
}

/** The catalog a command works with, and whether it is the built-in one (see {@link resolveCatalog}). */
export interface ResolvedCatalog {
  readonly catalog: AnyCatalog;
  /**
   * True when neither `--catalog` nor `$SWITCHYARD_CATALOG` named a module, so the built-in
   * pipeline catalog is in use (a command that reads the catalog then says so on stderr, with
   * {@link BUILT_IN_CATALOG_NOTE}). False on a command without `--catalog`.
   */
  readonly builtIn: boolean;
}

/** What a command that reads the catalog prints on stderr when the built-in one is in use. */
export const BUILT_IN_CATALOG_NOTE =
  `note: no --catalog given and $${CATALOG_ENV} is not set: using the built-in pipeline catalog ` +
  `(pipelineCatalog of @switchyard/event-schema). Pass --catalog <module> or set ${CATALOG_ENV} ` +
  `to use your own.`;

/**
 * The catalog a command works with: the module `--catalog` (else `$SWITCHYARD_CATALOG`) names, or
 * the built-in pipeline catalog when neither is set or the command has no `--catalog` option;
 * and whether it is that built-in catalog because no module was named.
 */
export async function resolveCatalog(
  command: Command,
  option: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ResolvedCatalog> {
  if (!command.options.some((o) => o.long === "--catalog"))
    return { catalog: pipelineCatalog, builtIn: false };
  const specifier = option ?? (env[CATALOG_ENV] || undefined);
  // An empty --catalog would import the working directory ("Cannot find module 'file:///…'").
  if (specifier?.trim() === "")
    throw new CliError(
      "CATALOG_NOT_FOUND",
      `${option !== undefined ? "--catalog" : `$${CATALOG_ENV}`}: the module is empty; give the path or package name of the module that exports the catalog.`,
    );
  return specifier === undefined
    ? { catalog: pipelineCatalog, builtIn: true }
    : { catalog: await loadCatalog(specifier), builtIn: false };
}

/** Options of {@link loadCatalog}. */
export interface LoadCatalogOptions {
  /** Where a relative path or a package name is resolved from. @defaultValue `process.cwd()` */
  readonly cwd?: string;
  /** Imports the resolved URL or package name. @defaultValue the runtime's `import()` */
  readonly importModule?: (url: string) => Promise<unknown>;
}

/**
 * Import the catalog a module exports. `specifier` is a file path (relative to `cwd`, or absolute,
 * or a `file:` URL) or a package name resolved from `cwd`, optionally followed by `#exportName`.
 * The catalog is that export, else the module's `catalog` export, else its default export, else
 * its only export that is a catalog. `.js`/`.mjs` always load; `.ts` loads when the runtime can
 * import TypeScript (the CLI run through tsx, as `pnpm switchyard` does), else a `CliError`
 * (`CATALOG_TYPESCRIPT`) says how. Every failure is a `CliError` (exit 2) naming the module.
 */
export async function loadCatalog(
  specifier: string,
  options: LoadCatalogOptions = {},
): Promise<AnyCatalog> {
  const cwd = options.cwd ?? process.cwd();
  const importModule = options.importModule ?? ((url: string) => import(url));
  const hash = specifier.lastIndexOf("#");
  const name = hash > 0 ? specifier.slice(0, hash) : specifier;
  const exportName = hash > 0 ? specifier.slice(hash + 1) : undefined;
  const url = moduleUrl(name, cwd);
  let namespace: Record<string, unknown>;
  try {
    namespace = (await importModule(url)) as Record<string, unknown>;
  } catch (error) {
    throw importError(name, url, error, cwd);
  }
  const where = `--catalog ${name}`;
  if (exportName !== undefined) {
    const value = namespace[exportName];
    if (isCatalog(value)) return value;
    throw new CliError(
      "CATALOG_NOT_FOUND",
      `${where}: export ${JSON.stringify(exportName)} is ${value === undefined ? "missing" : "not a catalog made by defineCatalog()"}; exports: ${Object.keys(namespace).join(", ") || "none"}.`,
    );
  }
  for (const key of ["catalog", "default"]) if (isCatalog(namespace[key])) return namespace[key];
  const catalogs = Object.keys(namespace).filter((key) => isCatalog(namespace[key]));
  if (catalogs.length === 1) return namespace[catalogs[0]!] as AnyCatalog;
  throw new CliError(
    "CATALOG_NOT_FOUND",
    catalogs.length === 0
      ? `${where}: the module exports no catalog (exports: ${Object.keys(namespace).join(", ") || "none"}). Export the result of defineCatalog() as \`catalog\` or as the default export.`
      : `${where}: the module exports several catalogs (${catalogs.join(", ")}) and none as \`catalog\` or default; pick one with ${name}#${catalogs[0]!}.`,
  );
}

function moduleUrl(name: string, cwd: string): string {
  if (name.startsWith("file:")) return name;
  // A bare name is a file when one exists there (`catalog.mjs`), else a package.
  if (PATH_LIKE.test(name) || existsSync(resolve(cwd, name))) {
    const path = isAbsolute(name) ? name : resolve(cwd, name);
    if (!existsSync(path))
      throw new CliError(
        "CATALOG_NOT_FOUND",
        `--catalog ${name}: no such file (${path}). Give the path of the module that exports the catalog.`,
      );
    return pathToFileURL(path).href;
  }
  // A package name: resolved from the working directory, as the user's own project sees it.
  try {
    return pathToFileURL(createRequire(join(cwd, "package.json")).resolve(name)).href;
  } catch {
    // An ESM-only package has no `require` condition; let import() resolve it.
    return name;
  }
}

function importError(name: string, url: string, error: unknown, cwd: string): CliError {
  const code = (error as { code?: unknown } | null)?.code;
  // The module, or one it imports, is TypeScript the runtime cannot load.
  const typescript =
    TYPESCRIPT.test(url) || /\.[cm]?tsx?\b/.test(error instanceof Error ? error.message : "");
  if (
    typescript &&
    (code === "ERR_UNKNOWN_FILE_EXTENSION" || code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX")
  )
    return new CliError(
      "CATALOG_TYPESCRIPT",
      `--catalog ${name}: this Node (${process.version}) cannot import TypeScript. Compile the catalog to .js/.mjs, or run the CLI through tsx: \`npx tsx node_modules/@switchyard/cli/dist/bin.js …\` (or NODE_OPTIONS="--import tsx").`,
      undefined,
      { cause: error },
    );
  if (code === "ERR_MODULE_NOT_FOUND" && url === name)
    return new CliError(
      "CATALOG_NOT_FOUND",
      `--catalog ${name}: no such file or package here (${cwd}). Install the package, or give the module's path starting with ./`,
      undefined,
      { cause: error },
    );
  const message = error instanceof Error ? error.message : String(error);
  return new CliError(
    "CATALOG_LOAD_FAILED",
    `--catalog ${name}: importing the module failed: ${message}`,
    undefined,
    { cause: error },
  );
}
