// The one place that speaks HTTP: fetch, the bearer token, JSON bodies,
// errors and Server-Sent Events.

import { BoxfenceError, errorFor } from "./errors.js";

/** How to reach the daemon. */
export interface ClientOptions {
  /** The daemon's URL, `http://` or `https://`; default `BOXFENCE_URL` or `http://127.0.0.1:4280`. */
  url?: string;
  /** The admin token or an app token; default `BOXFENCE_TOKEN`. */
  token?: string;
  /** A fetch to use instead of the global one (a proxy, a custom TLS agent). */
  fetch?: typeof fetch;
}

/** A query string's values; undefined ones are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

function env(name: string): string | undefined {
  // `process` exists in Node; elsewhere (a browser, Deno without env) there is no environment.
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

/** Sends requests to one daemon. */
export class Transport {
  readonly url: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const url = options.url ?? env("BOXFENCE_URL") ?? "http://127.0.0.1:4280";
    this.url = url.replace(/\/+$/, "");
    this.#token = options.token ?? env("BOXFENCE_TOKEN");
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** `method path` with a JSON body; resolves to the parsed answer, throws a BoxfenceError otherwise. */
  async json<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    const response = await this.send(method, path, body, query, undefined);
    const text = await response.text();
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  /** The events of a Server-Sent Events answer, each `data` parsed as JSON; stops (and hangs up) when the caller does. */
  async *events<T>(path: string, query: Query, signal?: AbortSignal): AsyncGenerator<T> {
    const abort = new AbortController();
    const stop = () => abort.abort(signal?.reason);
    if (signal?.aborted) stop();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const response = await this.send("GET", path, undefined, query, abort.signal);
      if (response.body === null) return;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffered += value.replace(/\r\n?/g, "\n");
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          // Keep-alive comments carry no data.
          if (data !== "") yield JSON.parse(data) as T;
        }
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      abort.abort();
    }
  }

  private async send(
    method: string,
    path: string,
    body: unknown,
    query: Query | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    const url = new URL(this.url + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (cause) {
      throw new BoxfenceError(0, "connection_failed", `${method} ${url.origin}${path}: ${String(cause)}`, [], {
        cause,
      });
    }
    if (!response.ok) {
      const text = await response.text();
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not the API's JSON error (a proxy's page, say): the status speaks.
      }
      throw errorFor(response.status, parsed, response.headers.get("retry-after"));
    }
    return response;
  }
}
