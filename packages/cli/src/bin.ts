#!/usr/bin/env node
import { exitQuietlyOnBrokenPipe } from "./output";
import { runCli } from "./program";

// `switchyard … | head -1`: a reader that stops early is not an error.
exitQuietlyOnBrokenPipe();
process.exitCode = await runCli(process.argv);
