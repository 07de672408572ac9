# memcord in a container: a multi-stage build of the release binary on Debian bookworm.
#
#   docker build -t memcord .
#   docker run --rm -p 11311:11311 memcord peer --host 0.0.0.0 --port 11311   # a drop-in memcached
#
# docker-compose.yml runs three peers and three memcached backends with deploy/compose-config.ini.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
RUN cargo build --release --locked --bin memcord

FROM debian:bookworm-slim
RUN useradd --system --home-dir /var/lib/memcord --create-home memcord
COPY --from=build /src/target/release/memcord /usr/local/bin/memcord
COPY config.ini /etc/memcord/config.ini
USER memcord
# The ordered modes keep their durable state under [cluster] data_dir, relative to here.
WORKDIR /var/lib/memcord
EXPOSE 8000 9000
ENTRYPOINT ["memcord"]
CMD ["peer", "--config", "/etc/memcord/config.ini", "--id", "0"]
