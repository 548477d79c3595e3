//! Model versions' artifacts in the lake's object store, beside the tables they were
//! trained on: `<workspace>/models/<model>/v<version>.json`.

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;
use uuid::Uuid;

use crate::error::ModelError;
use crate::scorer::Scorer;

/// Where artifacts are kept: under the lake root.
#[derive(Debug)]
pub struct ArtifactStore {
    store: Box<dyn ObjectStore>,
    prefix: StorePath,
}

fn store_error(e: impl std::fmt::Display) -> ModelError {
    ModelError::Lake(format!("the model store: {e}"))
}

impl ArtifactStore {
    /// A store under `lake_root` (a `file://` folder, or any URL `object_store` parses).
    pub fn new(lake_root: &Url) -> Result<Self, ModelError> {
        let (store, prefix) = object_store::parse_url(lake_root).map_err(store_error)?;
        Ok(Self { store, prefix })
    }

    /// The artifact's path under the lake root (what a version records).
    pub fn relative_path(workspace: Uuid, model: Uuid, version: i32) -> String {
        format!("{workspace}/models/{model}/v{version}.json")
    }

    fn full(&self, relative: &str) -> StorePath {
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend(relative.split('/').map(str::to_string));
        StorePath::from_iter(parts)
    }

    pub async fn put(&self, relative: &str, scorer: &Scorer) -> Result<(), ModelError> {
        let bytes = serde_json::to_vec(scorer).map_err(store_error)?;
        self.store
            .put(&self.full(relative), PutPayload::from(bytes))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub async fn get(&self, relative: &str) -> Result<Scorer, ModelError> {
        let got = self
            .store
            .get(&self.full(relative))
            .await
            .map_err(store_error)?;
        let bytes = got.bytes().await.map_err(store_error)?;
        serde_json::from_slice(&bytes).map_err(store_error)
    }
}
