"""The demo social network as a strawberry schema.

Example:
    >>> schema = build_schema()
    >>> "type User implements Node" in str(schema)
    True
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Annotated, Any

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.types import Info

from fieldguard.demo import data


def _world(info: Info) -> World:
    return info.context.world  # type: ignore[no-any-return]


@strawberry.interface
class Node:
    """Anything with a global id."""

    id: strawberry.ID


@strawberry.type
class User(Node):
    """A member of the network."""

    handle: str
    display_name: str
    email: str | None
    phone: str | None
    birthday: str | None
    location: str | None
    bio: str
    follower_count: int
    moderation_notes: str | None
    privacy: strawberry.Private[dict[str, str]]
    visibility: strawberry.Private[str]
    consent: strawberry.Private[list[str]]

    @strawberry.field
    def posts(self, info: Info, first: int = 10) -> list[Post]:
        """The user's posts."""
        return _world(info).posts_of(self.id, first)


@strawberry.type
class Post(Node):
    """A post."""

    body: str
    created_at: str
    location: str | None
    author_id: strawberry.Private[str]
    privacy: strawberry.Private[dict[str, str]]
    visibility: strawberry.Private[str]
    consent: strawberry.Private[list[str]]

    @strawberry.field
    def author(self, info: Info) -> User | None:
        """Who wrote it."""
        return _world(info).user(self.author_id)

    @strawberry.field
    def comments(self, info: Info) -> list[Comment]:
        """Comments on the post."""
        return _world(info).comments_of(self.id)


@strawberry.type
class Comment(Node):
    """A comment."""

    body: str
    author_id: strawberry.Private[str]

    @strawberry.field
    def author(self, info: Info) -> User | None:
        """Who wrote it."""
        return _world(info).user(self.author_id)


SearchResult = Annotated[User | Post, strawberry.union("SearchResult")]


@strawberry.type
class UpdateProfilePayload:
    """What ``updateProfile`` returns."""

    user: User | None


class World:
    """The demo store converted once to strawberry objects."""

    def __init__(self, store: data.Store) -> None:
        self.users = [User(id=strawberry.ID(u.id), handle=u.handle,
                           display_name=u.display_name, email=u.email, phone=u.phone,
                           birthday=u.birthday, location=u.location, bio=u.bio,
                           follower_count=u.follower_count,
                           moderation_notes=u.moderation_notes, privacy=u.privacy,
                           visibility=u.visibility, consent=u.consent)
                      for u in store.users]
        self.posts = [Post(id=strawberry.ID(p.id), body=p.body, created_at=p.created_at,
                           location=p.location, author_id=p.author_id, privacy=p.privacy,
                           visibility=p.visibility, consent=p.consent) for p in store.posts]
        self.comments = [Comment(id=strawberry.ID(c.id), body=c.body, author_id=c.author_id)
                         for c in store.comments]
        self._post_of = {c.id: c_data.post_id for c, c_data in zip(self.comments,
                                                                   store.comments, strict=True)}
        self._by_id: dict[str, Any] = {o.id: o for o in (*self.users, *self.posts,
                                                         *self.comments)}
        self._posts_by_author: dict[str, list[Post]] = {}
        for p in self.posts:
            self._posts_by_author.setdefault(p.author_id, []).append(p)

    def user(self, user_id: str) -> User | None:
        obj = self._by_id.get(user_id)
        return obj if isinstance(obj, User) else None

    def get(self, node_id: str) -> Any:
        return self._by_id.get(node_id)

    def page(self, first: int, after: str | None) -> list[User]:
        start = 0
        if after is not None:
            idx = next((i for i, u in enumerate(self.users) if u.id == after), None)
            start = len(self.users) if idx is None else idx + 1
        return self.users[start:start + max(first, 0)]

    def posts_of(self, user_id: str, first: int) -> list[Post]:
        return self._posts_by_author.get(user_id, [])[:first]

    def comments_of(self, post_id: str) -> list[Comment]:
        return [c for c in self.comments if self._post_of[c.id] == post_id]

    def search(self, text: str, first: int) -> list[User | Post]:
        out: list[User | Post] = []
        candidates: list[User | Post] = [*self.users, *self.posts]
        for obj in candidates:
            hay = obj.handle if isinstance(obj, User) else obj.body
            if text.lower() in hay.lower():
                out.append(obj)
                if len(out) >= first:
                    break
        return out


@strawberry.type
class Query:
    """Entry points."""

    @strawberry.field
    def users(self, info: Info, first: int = 10, after: str | None = None) -> list[User]:
        """A page of users."""
        return _world(info).page(first, after)

    @strawberry.field
    def user(self, info: Info, id: strawberry.ID) -> User | None:
        """One user by id."""
        return _world(info).user(str(id))

    @strawberry.field
    def node(self, info: Info, id: strawberry.ID) -> Node | None:
        """Any object by id."""
        found = _world(info).get(str(id))
        return found if isinstance(found, Node) else None

    @strawberry.field
    def search(self, info: Info, text: str, first: int = 10) -> list[SearchResult]:
        """Users and posts matching ``text``."""
        return _world(info).search(text, first)

    @strawberry.field
    def me(self, info: Info) -> User | None:
        """The caller's own profile."""
        subject = info.context.caller.subject.id
        return None if subject is None else _world(info).user(subject)

    @strawberry.field
    async def users_async(self, info: Info, first: int = 10) -> list[User]:
        """A page of users from an async resolver."""
        await asyncio.sleep(0)
        return _world(info).page(first, None)


@strawberry.type
class Mutation:
    """Writes."""

    @strawberry.mutation
    def update_profile(self, info: Info, display_name: str) -> UpdateProfilePayload:
        """Change the caller's display name; returns the profile."""
        subject = info.context.caller.subject.id
        user = None if subject is None else _world(info).user(subject)
        if user is not None:
            user.display_name = display_name
        return UpdateProfilePayload(user=user)


@strawberry.type
class Subscription:
    """Streams."""

    @strawberry.subscription
    async def profiles(self, info: Info, first: int = 3) -> AsyncGenerator[User, None]:
        """Emit the first ``first`` profiles, one event each."""
        for user in _world(info).page(first, None):
            yield user


def build_schema(extensions: Sequence[type[SchemaExtension]] = ()) -> strawberry.Schema:
    """The strawberry schema; the data travels in the context as a
    :class:`World` (``DemoContext.world``)."""
    from fieldguard.plugins.strawberry import purpose_directive

    return strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription,
                             types=[Comment], extensions=list(extensions),
                             directives=[purpose_directive])
