"""The GraphQL machinery both plugins share (depends on graphql-core only)."""
