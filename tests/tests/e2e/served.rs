//! A file on loopback behind an `Authorization` header, whose body a test
//! may replace while it is served: the sources the CSV and Python
//! connectors read.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub struct ServedFile {
    /// The file's address.
    pub url: String,
    path: &'static str,
    body: Arc<Mutex<String>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ServedFile {
    /// Serves `body` at `path` to requests whose `Authorization` is one of
    /// `accepted` (401 to others), typed by `content_type` of the body.
    pub async fn serve(
        path: &'static str,
        accepted: &'static [&'static str],
        content_type: fn(&str) -> &'static str,
        body: &str,
    ) -> ServedFile {
        let shared = Arc::new(Mutex::new(body.to_string()));
        let state = shared.clone();
        let app = Router::new().route(
            path,
            get(move |headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                    if !auth.is_some_and(|a| accepted.contains(&a)) {
                        return (StatusCode::UNAUTHORIZED, "sign in").into_response();
                    }
                    let body = state.lock().unwrap().clone();
                    ([(header::CONTENT_TYPE, content_type(&body))], body).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        ServedFile { url, path, body: shared, _stop: stop }
    }

    /// `scheme://host:port`, as grants name it.
    pub fn origin(&self) -> String {
        self.url.trim_end_matches(self.path).to_string()
    }

    /// Serves `body` from now on.
    pub fn set(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }
}
