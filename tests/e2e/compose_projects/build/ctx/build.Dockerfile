FROM busybox:latest AS base
ARG VERSION=1.0
RUN echo "$VERSION" > /version

FROM base AS runtime
ARG VERSION
ENV APP_VERSION=$VERSION
LABEL org.example.version=$VERSION
WORKDIR /srv
EXPOSE 7000
CMD ["sleep", "3600"]

FROM base AS unused
RUN false
