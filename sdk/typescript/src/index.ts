export { Boxfence } from "./client.js";
export { Box, EphemeralBox, type BoxCreateOptions, type HasTransport } from "./box.js";
export { Transport, type ClientOptions } from "./http.js";
export { Apps, Machines, NetworkPolicies } from "./resources.js";
export {
  AuthError,
  BoxfenceError,
  ConflictError,
  NotFoundError,
  RateLimitError,
  ServerError,
  ValidationError,
} from "./errors.js";
export type * from "./types.js";
export type { components, paths } from "./generated/openapi.js";
