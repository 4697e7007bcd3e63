// The vault's API as a client calls it: IngestService to append evidence
// statements and TreeService to read the log, over gRPC (HTTP/2) in
// Node.js and gRPC-web in browsers; the transport is picked by the
// package's `#transport` import, resolved per platform. Nothing the vault
// answers is trusted here: receipts, checkpoints and proofs come back as
// bytes for the verifier (receipt.ts, checkpoint.ts) to check.

import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  type Interceptor,
  createClient,
} from "@connectrpc/connect";
import { CLIENT_STREAMING, defaultTransport } from "#transport";

import { type AppendStreamRequestSchema, IngestService } from "./gen/evault/v1/ingest_pb.js";
import type { EvidenceStatementSchema, LogEntry, Receipt as WireReceipt } from "./gen/evault/v1/log_pb.js";
import { TreeService } from "./gen/evault/v1/tree_pb.js";
import type { Receipt } from "./receipt.js";

/**
 * An evidence statement to append: the evidence's SHA-256 and size, its
 * media type, an optional name and labels, and optionally its bytes to
 * upload. Plain objects will do, e.g.
 * `{ sha256, size: 3n, mediaType: "text/plain", labels: [{ key: "case", value: "IR-7" }] }`.
 */
export type Statement = MessageInitShape<typeof EvidenceStatementSchema>;

/** Options of {@link createVaultClient}. */
export interface VaultClientOptions {
  /**
   * Bearer token sent as `authorization` with every call; a function is
   * asked again at each call (for a token that changes). Appends need one
   * with the `evault.append` scope, reads one with `evault.read` unless the
   * vault's reads are public. No header is sent when it is empty.
   */
  readonly token?: string | (() => string | null | undefined);
}

/** The answer to one append. */
export interface Appended {
  /** The entry's receipt: the fields of its `.tlog-proof` file, not yet verified. */
  readonly receipt: Receipt;
  /** True when the vault had logged this statement before: the receipt is the original entry's. */
  readonly duplicate: boolean;
}

/** The answer to one statement of {@link VaultClient.appendStream}. */
export type StreamedAppend =
  | (Appended & { readonly position: number; readonly error?: undefined })
  | {
      /** Position of the statement in the sequence given, from 0. */
      readonly position: number;
      /** Why it was not logged: the status the unary append would have returned. */
      readonly error: ConnectError;
    };

/** An inclusion proof with the checkpoint it leads to. */
export interface InclusionProof {
  /** The proven entry's index. */
  readonly index: bigint;
  /** Size of the tree the proof is in. */
  readonly treeSize: bigint;
  /** The proof's hashes, the leaf's sibling first. */
  readonly proof: Uint8Array[];
  /** The checkpoint note of that tree, verbatim. */
  readonly checkpoint: Uint8Array;
}

/** A consistency proof with the checkpoint of the larger tree. */
export interface ConsistencyProof {
  /** The proof's hashes (RFC 9162 §2.1.4 order); empty from size 0 or between equal sizes. */
  readonly proof: Uint8Array[];
  /** The checkpoint note of the larger tree, verbatim. */
  readonly checkpoint: Uint8Array;
}

/** One page of {@link VaultClient.find}. */
export interface FoundEntries {
  /** The entries logging the evidence, by index. */
  readonly entries: LogEntry[];
  /** Token of the next page; empty when this page is the last. */
  readonly nextPageToken: string;
}

/**
 * The vault's API. A method throws a `ConnectError` when the call fails,
 * and an Error when the vault's answer lacks what it must carry.
 */
export interface VaultClient {
  /** IngestService as generated, for what the methods below leave out. */
  readonly ingest: Client<typeof IngestService>;
  /** TreeService as generated, for what the methods below leave out. */
  readonly tree: Client<typeof TreeService>;
  /** Logs one statement; answered once its entry is durable and covered by a signed checkpoint. */
  append(statement: Statement, options?: CallOptions): Promise<Appended>;
  /**
   * Logs many statements over one AppendStream (Node.js only: gRPC-web has
   * no client streaming). Yields one answer per statement, in order; a
   * statement the vault refuses yields an error and the stream goes on.
   */
  appendStream(statements: Iterable<Statement> | AsyncIterable<Statement>, options?: CallOptions): AsyncIterable<StreamedAppend>;
  /** The latest checkpoint note, verbatim (to verify with openCheckpoint). */
  checkpoint(options?: CallOptions): Promise<Uint8Array>;
  /**
   * Proves the entry at `leaf` (an index, or a 32-byte leaf hash) in the
   * tree of `treeSize` entries, a published checkpoint's; 0n for the latest.
   */
  inclusionProof(leaf: bigint | Uint8Array, treeSize?: bigint, options?: CallOptions): Promise<InclusionProof>;
  /** Proves that the tree of `secondSize` entries extends the tree of `firstSize`. */
  consistencyProof(firstSize: bigint, secondSize: bigint, options?: CallOptions): Promise<ConsistencyProof>;
  /** Up to `count` entries from index `start` (the vault returns at most 1000 per call). */
  entries(start: bigint, count: number, options?: CallOptions): Promise<LogEntry[]>;
  /** The entries logging the evidence whose SHA-256 is `sha256`, a page at a time. */
  find(sha256: Uint8Array, page?: { pageSize?: number; pageToken?: string }, options?: CallOptions): Promise<FoundEntries>;
  /** The verifier keys the vault lists; to be compared with keys obtained out of band, never trusted as such. */
  verifierKeys(options?: CallOptions): Promise<string[]>;
}

/** The receipt fields of a wire receipt. */
function receiptOf(wire: WireReceipt | undefined): Receipt {
  if (wire === undefined) throw new Error("the vault answered without a receipt");
  return { extra: wire.entry, index: wire.index, proof: wire.inclusionProof, checkpoint: wire.checkpoint };
}

function noteOf(checkpoint: { note: Uint8Array } | undefined): Uint8Array {
  if (checkpoint === undefined) throw new Error("the vault answered without a checkpoint");
  return checkpoint.note;
}

/**
 * A client of the vault at `baseUrl` (e.g. `http://127.0.0.1:7400`, or a
 * page's `window.location.origin`).
 */
export function createVaultClient(baseUrl: string, options: VaultClientOptions = {}): VaultClient {
  const { token } = options;
  const interceptors: Interceptor[] = [];
  if (token !== undefined) {
    interceptors.push((next) => (request) => {
      const value = typeof token === "function" ? token() : token;
      if (value) request.header.set("authorization", `Bearer ${value}`);
      return next(request);
    });
  }
  const transport = defaultTransport(baseUrl, interceptors);
  const ingest = createClient(IngestService, transport);
  const tree = createClient(TreeService, transport);

  return {
    ingest,
    tree,

    async append(statement, callOptions) {
      const response = await ingest.append({ statement }, callOptions);
      return { receipt: receiptOf(response.receipt), duplicate: response.duplicate };
    },

    async *appendStream(statements, callOptions) {
      if (!CLIENT_STREAMING) {
        throw new ConnectError("AppendStream needs gRPC over HTTP/2: gRPC-web has no client streaming", Code.Unimplemented);
      }
      async function* requests(): AsyncIterable<MessageInitShape<typeof AppendStreamRequestSchema>> {
        let id = 0n;
        for await (const statement of statements) yield { requestId: id++, statement };
      }
      let position = 0;
      for await (const response of ingest.appendStream(requests(), callOptions)) {
        // Responses come in request order, each echoing its request's id.
        if (response.requestId !== BigInt(position)) {
          throw new Error(`the vault answered request ${response.requestId} where ${position} was due`);
        }
        const outcome = response.outcome;
        if (outcome.case === "receipt") {
          yield { position, receipt: receiptOf(outcome.value), duplicate: response.duplicate };
        } else if (outcome.case === "error") {
          const code = outcome.value.code in Code ? (outcome.value.code as Code) : Code.Unknown;
          yield { position, error: new ConnectError(outcome.value.message, code) };
        } else {
          throw new Error(`the vault answered request ${position} with neither a receipt nor an error`);
        }
        position++;
      }
    },

    async checkpoint(callOptions) {
      return noteOf((await tree.getCheckpoint({}, callOptions)).checkpoint);
    },

    async inclusionProof(leaf, treeSize = 0n, callOptions) {
      const response = await tree.getInclusionProof(
        { leaf: typeof leaf === "bigint" ? { case: "index", value: leaf } : { case: "leafHash", value: leaf }, treeSize },
        callOptions,
      );
      return {
        index: response.index,
        treeSize: response.treeSize,
        proof: response.inclusionProof,
        checkpoint: noteOf(response.checkpoint),
      };
    },

    async consistencyProof(firstSize, secondSize, callOptions) {
      const response = await tree.getConsistencyProof({ firstSize, secondSize }, callOptions);
      return { proof: response.consistencyProof, checkpoint: noteOf(response.checkpoint) };
    },

    async entries(start, count, callOptions) {
      return (await tree.getEntries({ start, count }, callOptions)).entries;
    },

    async find(sha256, page = {}, callOptions) {
      const response = await tree.findEntries({ sha256, pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? "" }, callOptions);
      return { entries: response.entries, nextPageToken: response.nextPageToken };
    },

    async verifierKeys(callOptions) {
      return (await tree.getVerifierKeys({}, callOptions)).verifierKeys;
    },
  };
}

