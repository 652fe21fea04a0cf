import { apiSuite } from "./test/api-suite";
import { memory } from "./test/fixture";

apiSuite("the memory driver", memory);
