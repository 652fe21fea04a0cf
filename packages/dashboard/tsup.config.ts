import { cpSync } from "node:fs";
import { packageConfig } from "../../tsup.shared";

// The client files ship inside dist/ (dist/client/), beside the code that serves them.
export default packageConfig({
  onSuccess: async () => {
    cpSync("client", "dist/client", { recursive: true });
  },
});
