// The transport in browsers: gRPC-web (binary protobuf) over fetch, which
// the vault's gateway answers on the same port as native gRPC. Browsers
// cannot speak gRPC itself (no access to HTTP/2 framing or trailers), and
// gRPC-web has no client streaming, so AppendStream is not available here.

import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

/** Whether this transport carries client streams (AppendStream). */
export const CLIENT_STREAMING = false;

/** A gRPC-web transport to the vault at `baseUrl`. */
export function defaultTransport(baseUrl: string, interceptors: Interceptor[]): Transport {
  return createGrpcWebTransport({ baseUrl, interceptors });
}
