// The transport in Node.js: gRPC over HTTP/2 (plain text for http://,
// TLS for https://), the vault's native protocol, which carries
// AppendStream's bidirectional stream.

import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/** Whether this transport carries client streams (AppendStream). */
export const CLIENT_STREAMING = true;

/** A gRPC transport over HTTP/2 to the vault at `baseUrl`. */
export function defaultTransport(baseUrl: string, interceptors: Interceptor[]): Transport {
  return createGrpcTransport({ baseUrl, interceptors });
}
