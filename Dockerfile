# The kube-vrrp image: one static-ish binary for `controller`, `agent` and `crd`.
#   docker build -t kube-vrrp .
# The agent needs root in its container (NET_ADMIN + NET_RAW are effective only for uid 0
# without ambient capabilities); the chart runs the controller as uid 65532.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY e2e e2e
RUN cargo build --release --locked --bin kube-vrrp \
 && strip target/release/kube-vrrp

FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/target/release/kube-vrrp /usr/local/bin/kube-vrrp
ENTRYPOINT ["/usr/local/bin/kube-vrrp"]
CMD ["--help"]
