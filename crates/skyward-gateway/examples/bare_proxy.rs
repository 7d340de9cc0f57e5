//! The smallest proxy on the gateway's HTTP stack (hyper's HTTP/1 server,
//! one tokio worker, and hyper-util's pooled client or, with `h1` as the
//! third argument, the gateway's own HTTP/1.1 client): read the body, send
//! it upstream, read the answer, send it back; no auth, limits, routing,
//! timers, usage or metrics. It shows what the HTTP stack itself costs
//! per request, to set beside the gateway and nginx (BENCHMARKS.md,
//! issue 14):
//!
//! ```sh
//! cargo run --release -p skyward-gateway --example bare_proxy -- 127.0.0.1:9961 http://127.0.0.1:9962 [h1]
//! ```
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use skyward_gateway::body::UpBody;
use std::convert::Infallible;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: bare_proxy LISTEN_ADDR UPSTREAM_BASE_URL [h1]".into());
    };
    let own = args.next().as_deref() == Some("h1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut c = HttpConnector::new();
        c.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(c);
        let pool = skyward_gateway::h1::Pool::new(std::time::Duration::from_secs(5));
        let l = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("{listen}: {e}"))?;
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let (client, pool, upstream) = (client.clone(), pool.clone(), upstream.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (client, pool) = (client.clone(), pool.clone());
                    let uri = format!("{upstream}{}", req.uri().path());
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let up = Request::post(uri)
                            .header("content-type", "application/json")
                            .body(body);
                        let sent = match up {
                            Ok(up) if own => pool.send(up).await.map(|r| r.map(UpBody::H1)).ok(),
                            Ok(up) => client
                                .request(up.map(Full::new))
                                .await
                                .map(|r| r.map(UpBody::Hyper))
                                .ok(),
                            Err(_) => None,
                        };
                        let answer = match sent {
                            Some(r) => {
                                let (parts, b) = r.into_parts();
                                b.collect().await.ok().map(|b| (parts, b.to_bytes()))
                            }
                            None => None,
                        };
                        let Some((parts, bytes)) = answer else {
                            let mut r = Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = StatusCode::BAD_GATEWAY;
                            return Ok::<_, Infallible>(r);
                        };
                        Ok(Response::from_parts(parts, Full::new(bytes)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    })
}
