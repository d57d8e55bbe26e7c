//! `file`: a maintenance file's presence is a failure (`Exists`), or the integer in it is
//! multiplied by the weight (`Value`, keepalived `track_file`).

use std::path::PathBuf;
use std::time::Duration;

use super::{BoxFuture, Checker, Outcome, io_text};
use crate::api::FileMode;

pub struct File {
    pub path: PathBuf,
    pub mode: FileMode,
}

/// keepalived reads the file's first number; an empty or unreadable file counts as 0.
fn value_of(text: &str) -> Result<i64, String> {
    let t = text.split_whitespace().next().unwrap_or("0");
    t.parse::<i64>()
        .map_err(|_| format!("{t:?} is not an integer"))
}

impl Checker for File {
    fn run(&self, _timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match self.mode {
                FileMode::Exists => match tokio::fs::symlink_metadata(&self.path).await {
                    Ok(_) => Outcome::fail("file present".into()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Outcome::pass("file absent".into())
                    }
                    Err(e) => Outcome::fail(format!("cannot check the file: {}", io_text(&e))),
                },
                FileMode::Value => {
                    // A small read: a huge file is not a number anyway.
                    let read = async {
                        use tokio::io::AsyncReadExt;
                        let mut f = tokio::fs::File::open(&self.path).await?;
                        let mut buf = vec![0; 64];
                        let n = f.read(&mut buf).await?;
                        buf.truncate(n);
                        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
                    };
                    match read.await {
                        Ok(text) => match value_of(&text) {
                            Ok(v) => Outcome::value(v),
                            Err(e) => Outcome::fail(e),
                        },
                        // keepalived: a missing file reads as 0.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::value(0),
                        Err(e) => Outcome::fail(format!("cannot read the file: {}", io_text(&e))),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values() {
        assert_eq!(super::value_of("5\n"), Ok(5));
        assert_eq!(super::value_of("-254"), Ok(-254));
        assert_eq!(super::value_of(""), Ok(0));
        assert!(super::value_of("x").is_err());
    }
}
