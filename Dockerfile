# The kube-vrrp image: one binary for `controller`, `agent`, `crd` and the tools, on `scratch`
# with only the libraries it links. Build the root filesystem first, then the image, with
# docker or buildah alike (CI builds and starts it with buildah: .ci/image):
#
#   bash image/rootfs.sh && docker build -t REGISTRY/kube-vrrp:0.1.0 .
#
# It runs as nobody (65534) by default: the controller needs nothing more. The agent needs
# NET_ADMIN and NET_RAW, which Linux makes effective only for uid 0 without ambient
# capabilities, so the chart runs the agent container as root with just those two.
FROM scratch
COPY image/rootfs/ /
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/kube-vrrp"]
CMD ["--help"]
