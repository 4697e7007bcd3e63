//! The C2SP tlog-tiles read API over HTTP: `/checkpoint`,
//! `/tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]`, served from
//! storage, and only within the latest published checkpoint.
//!
//! Storage holds full tiles only; a partial tile is derived by
//! `evault_storage::tiles::read_tiles`, the same function proofs use, so a
//! path serves the same bytes whoever reads it. Clients poll the latest
//! checkpoint's partial tiles over and over: the API's cache keeps them
//! once derived.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evault_core::tile::{TILE_WIDTH, TilePath, tile_at};
use evault_core::{Checkpoint, Note, encode_bundle};
use evault_storage::tiles::{TileCache, read_tiles};
use evault_storage::{LogStore, StorageError};

/// Tiles and bundles never change once published: a tile's path names its
/// width, so the bytes behind a path are fixed forever. The checkpoint
/// changes with every batch.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// Full tiles the API keeps in memory (8 KiB each: 8 MiB). Clients and
/// caches in front keep full tiles forever, so the API reads most of them
/// once; the cache mostly spares re-reading the full tiles a partial tile
/// of a higher level is derived from.
const TILE_CACHE: usize = 1024;

/// The tile API of one log.
pub struct TileApi<S> {
    origin: String,
    store: S,
    cache: TileCache,
}

impl<S: LogStore> TileApi<S> {
    /// Serves the tiles of `origin` from `store`.
    pub fn new(origin: &str, store: S) -> Arc<Self> {
        Arc::new(TileApi {
            origin: origin.to_string(),
            store,
            cache: TileCache::new(TILE_CACHE),
        })
    }

    /// The axum routes of the API.
    pub fn routes(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/checkpoint", axum::routing::get(checkpoint::<S>))
            .route("/tile/{*path}", axum::routing::get(tile::<S>))
            .with_state(self)
    }

    async fn latest(&self) -> Result<(Vec<u8>, u64), Response> {
        let note = match self.store.checkpoint(&self.origin, None).await {
            Ok(Some(note)) => note,
            // A log not created yet (an audit trail before its first
            // record) has published nothing, like an empty one.
            Ok(None) | Err(StorageError::NoSuchLog(_)) => {
                return Err(not_found("no checkpoint published yet"));
            }
            Err(e) => return Err(server_error(e)),
        };
        let size = Note::parse(&note)
            .ok()
            .and_then(|n| Checkpoint::parse(n.text()).ok())
            .map(|c| c.size)
            .ok_or_else(|| server_error("stored checkpoint is malformed"))?;
        Ok((note, size))
    }
}

fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{message}\n")).into_response()
}

fn server_error(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "tile API read failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "storage is unavailable; retry later\n",
    )
        .into_response()
}

fn bytes(body: Vec<u8>, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn checkpoint<S: LogStore>(State(api): State<Arc<TileApi<S>>>) -> Response {
    match api.latest().await {
        Ok((note, _)) => bytes(note, "text/plain; charset=utf-8", NO_CACHE),
        Err(response) => response,
    }
}

async fn tile<S: LogStore>(
    State(api): State<Arc<TileApi<S>>>,
    Path(path): Path<String>,
) -> Response {
    let Ok(resource) = TilePath::parse(&format!("tile/{path}")) else {
        return not_found("not a tlog-tiles path");
    };
    let size = match api.latest().await {
        Ok((_, size)) => size,
        Err(response) => return response,
    };
    match resource {
        TilePath::Hashes(tile) => {
            // The published tree must hold at least the requested width.
            let available = tile_at(tile.level, tile.index, size).map_or(0, |t| t.width);
            if tile.width > available {
                return not_found("no such tile in the published tree");
            }
            match read_tiles(&api.store, &api.origin, size, &[tile], &api.cache).await {
                Ok(mut tiles) => bytes(tiles.remove(0), "application/octet-stream", IMMUTABLE),
                Err(e) => server_error(e),
            }
        }
        TilePath::Entries(bundle) => {
            let first = bundle.first_entry();
            let available = size.saturating_sub(first).min(TILE_WIDTH);
            if u64::from(bundle.width) > available {
                return not_found("no such entry bundle in the published tree");
            }
            let entries = match api
                .store
                .read_entries(&api.origin, first, u64::from(bundle.width))
                .await
            {
                Ok(entries) => entries,
                Err(e) => return server_error(e),
            };
            match encode_bundle(&entries) {
                Ok(body) => bytes(body, "application/octet-stream", IMMUTABLE),
                Err(e) => server_error(e),
            }
        }
    }
}
