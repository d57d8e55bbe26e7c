//! Small Kubernetes API helpers shared by the agent and the controller.

/// The object is gone (404 Not Found): for a write or a delete, nothing is left to do.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("x", "NotFound")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn only_404_is_not_found() {
        assert!(is_not_found(&api_error(404)));
        assert!(!is_not_found(&api_error(409)));
        assert!(!is_not_found(&kube::Error::LinesCodecMaxLineLengthExceeded));
    }
}
