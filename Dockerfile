# cf-host as a CloudForet collector plugin image: `cf-host serve` on 50051
# (plaintext h2c, as CloudForet's supervisor expects), the Nutanix collector
# in /plugins (hot-swappable: drop new versions in), metrics on 9090.
#
#   docker build -t cloudforet/cf-host-nutanix .
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --release -p cf-host --no-default-features \
 && cargo build --release -p guest-nutanix --target wasm32-wasip2

FROM debian:bookworm-slim
RUN useradd --uid 10001 --no-create-home cfhost \
 && mkdir -p /plugins /var/cache/cf-host \
 && chown cfhost /var/cache/cf-host
COPY --from=build /src/target/release/cf-host /usr/local/bin/cf-host
COPY --from=build /src/target/wasm32-wasip2/release/guest_nutanix.wasm /plugins/nutanix.wasm
USER 10001
ENV CF_HOST_PLUGINS_DIR=/plugins \
    CF_HOST_CACHE_DIR=/var/cache/cf-host \
    CF_HOST_LOG=info
EXPOSE 50051 9090
ENTRYPOINT ["cf-host", "serve"]
CMD ["--name", "nutanix", "--metrics-bind", "0.0.0.0:9090"]
