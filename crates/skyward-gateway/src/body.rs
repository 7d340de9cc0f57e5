//! The bodies the gateway handles: [`GwBody`], what it answers with (a
//! whole buffer, or chunks forwarded from a channel as they come), and
//! [`UpBody`], what an upstream answered, read through hyper's client or
//! the gateway's own HTTP/1.1 client ([`crate::h1`]).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub enum GwBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
    /// A whole body counted against the gateway's buffer budget until it
    /// is sent (the permit goes with it).
    Held(Option<Bytes>, tokio::sync::OwnedSemaphorePermit),
}

impl GwBody {
    pub fn full(b: impl Into<Bytes>) -> GwBody {
        GwBody::Full(Some(b.into()))
    }
}

impl Body for GwBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            GwBody::Full(b) | GwBody::Held(b, _) => {
                Poll::Ready(b.take().map(|b| Ok(Frame::data(b))))
            }
            GwBody::Channel(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, GwBody::Full(None) | GwBody::Held(None, _))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GwBody::Full(Some(b)) | GwBody::Held(Some(b), _) => {
                SizeHint::with_exact(b.len() as u64)
            }
            GwBody::Full(None) | GwBody::Held(None, _) => SizeHint::with_exact(0),
            GwBody::Channel(_) => SizeHint::default(),
        }
    }
}

/// An upstream's answer body, from whichever client sent the request.
pub enum UpBody {
    Hyper(hyper::body::Incoming),
    H1(crate::h1::Body),
}

/// What failed while sending a request upstream or reading its answer.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Hyper(#[from] hyper_util::client::legacy::Error),
    #[error(transparent)]
    Body(#[from] hyper::Error),
    #[error(transparent)]
    H1(#[from] crate::h1::Error),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = UpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpError>>> {
        match self.get_mut() {
            UpBody::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(UpError::Body))),
            UpBody::H1(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(UpError::H1))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Hyper(b) => b.is_end_stream(),
            UpBody::H1(b) => b.is_end_stream(),
        }
    }
}
