// The training-pipeline demo lands with the apps issue; until then this says so and exits 0.
console.log(
  "The training-pipeline demo is not built yet (it arrives with apps/training-pipeline).\n" +
    "Meanwhile: `pnpm test` runs every package's suite.",
);
