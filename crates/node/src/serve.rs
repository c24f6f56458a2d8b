//! The client-port server: the Strata and Admin services, gRPC health and reflection, with
//! the connection limits of the config.
//!
//! Every accepted connection waits (in its own task) for its first bytes for at most 10
//! seconds: a client that connects and sends nothing is closed without ever reaching the gRPC
//! server. At most `connections_max` connections are open at once; more are closed at accept.
//! HTTP/2 keepalive pings close connections whose peer stopped answering, and
//! `request_timeout_ms` bounds every unary call.

use crate::config::NodeConfig;
use crate::grpc::ClientService;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use strata_proto::v1::{
    admin_server::AdminServer, groups_server::GroupsServer, queues_server::QueuesServer,
    strata_server::StrataServer,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a new connection may stay silent before it is closed.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection holding its slot under the connection limit.
pub struct Conn {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

struct Incoming(mpsc::Receiver<std::io::Result<Conn>>);

impl futures_util::Stream for Incoming {
    type Item = std::io::Result<Conn>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Accepts connections under the limit, hands those that speak to the server.
async fn accept_loop(
    listener: TcpListener,
    limit: Arc<Semaphore>,
    tx: mpsc::Sender<std::io::Result<Conn>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: connections_max reached");
            metrics::counter!("strata_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut probe = [0u8; 1];
            match tokio::time::timeout(FIRST_BYTES_TIMEOUT, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {
                    let _ = tx
                        .send(Ok(Conn {
                            inner: stream,
                            _permit: permit,
                        }))
                        .await;
                }
                _ => {
                    tracing::debug!(%peer, "connection closed: nothing sent");
                }
            }
        });
    }
}

/// Serves the client API on `listener` until `stop` turns true.
pub async fn serve_client(
    listener: TcpListener,
    svc: ClientService,
    config: NodeConfig,
    stop: watch::Receiver<bool>,
    fatal: watch::Sender<Option<String>>,
) {
    let limit = Arc::new(Semaphore::new(config.connections_max as usize));
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, limit, tx, stop.clone()));
    let msg_max =
        (config.message_bytes_max as usize).max(config.fetch_bytes_max as usize) + (1 << 20);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<StrataServer<ClientService>>()
        .await;
    health_reporter
        .set_serving::<AdminServer<ClientService>>()
        .await;
    health_reporter
        .set_serving::<GroupsServer<ClientService>>()
        .await;
    health_reporter
        .set_serving::<QueuesServer<ClientService>>()
        .await;
    // Reflection lists what this port serves (the descriptor set also holds the peer API,
    // which lives on the peer port).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("strata.v1.Strata")
            .with_service_name("strata.v1.Admin")
            .with_service_name("strata.v1.Groups")
            .with_service_name("strata.v1.Queues")
            .with_service_name("grpc.health.v1.Health")
    };
    let reflection_v1 = reflection().build_v1();
    let reflection_v1alpha = reflection().build_v1alpha();
    let mut stop_rx = stop.clone();
    let shutdown = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    };
    let mut builder = Server::builder()
        .tcp_nodelay(true)
        .max_concurrent_streams(config.streams_per_connection_max)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .timeout(Duration::from_millis(config.request_timeout_ms));
    let mut router = builder.add_service(health);
    match (reflection_v1, reflection_v1alpha) {
        (Ok(v1), Ok(v1a)) => router = router.add_service(v1).add_service(v1a),
        (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "reflection unavailable"),
    }
    let r = router
        .add_service(
            StrataServer::new(svc.clone())
                .max_decoding_message_size(msg_max)
                .max_encoding_message_size(msg_max),
        )
        .add_service(
            AdminServer::new(svc.clone())
                .max_decoding_message_size(1 << 20)
                .max_encoding_message_size(16 << 20),
        )
        .add_service(
            GroupsServer::new(svc.clone())
                .max_decoding_message_size(4 << 20)
                .max_encoding_message_size(16 << 20),
        )
        .add_service(
            QueuesServer::new(svc)
                .max_decoding_message_size(8 << 20)
                .max_encoding_message_size(msg_max),
        )
        .serve_with_incoming_shutdown(Incoming(rx), shutdown)
        .await;
    if let Err(e) = r {
        let _ = fatal.send(Some(format!("client server: {e}")));
    }
}
