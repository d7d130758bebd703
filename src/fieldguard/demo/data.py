"""Deterministic demo data: users with their own privacy settings, posts,
comments. Nothing random: user ``u<n>``'s settings follow from ``n``, so tests
can say exactly what each caller must see.

Example:
    >>> store = Store.generate(users=6)
    >>> u = store.user("u2")
    >>> u.handle, u.privacy["email"], u.visibility
    ('user2', 'everyone', 'public')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# A few privacy profiles; users rotate through them. Real users pick from the
# same small menu, which is why per-shape object decisions stay few.
PRIVACY_PROFILES: tuple[dict[str, str], ...] = (
    {"email": "nobody", "phone": "nobody", "birthday": "authenticated",
     "location": "authenticated", "post_location": "authenticated", "followers": "everyone"},
    {"email": "authenticated", "phone": "nobody", "birthday": "everyone",
     "location": "everyone", "post_location": "everyone", "followers": "everyone"},
    {"email": "everyone", "phone": "authenticated", "birthday": "nobody",
     "location": "nobody", "post_location": "nobody", "followers": "authenticated"},
)


@dataclass
class User:
    """A member of the network (the data subject)."""

    id: str
    handle: str
    display_name: str
    email: str
    phone: str
    birthday: str
    location: str
    bio: str
    follower_count: int
    privacy: dict[str, str]
    visibility: str = "public"
    consent: list[str] = field(default_factory=list)
    moderation_notes: str = ""


@dataclass
class Post:
    """A post; carries its author's privacy settings for the objects decision."""

    id: str
    author_id: str
    body: str
    created_at: str
    location: str
    privacy: dict[str, str]
    visibility: str = "public"
    consent: list[str] = field(default_factory=list)


@dataclass
class Comment:
    """A comment on a post."""

    id: str
    post_id: str
    author_id: str
    body: str


def _visibility(n: int) -> str:
    if n % 50 == 7:
        return "suspended"
    if n % 10 == 3:
        return "private"
    return "public"


@dataclass
class Store:
    """An in-memory store of users, posts and comments."""

    users: list[User]
    posts: list[Post]
    comments: list[Comment]
    _by_id: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def generate(cls, users: int = 50, posts_per_user: int = 2) -> Store:
        """``users`` users ``u1``…, each with ``posts_per_user`` posts and comments."""
        us, ps, cs = [], [], []
        for n in range(1, users + 1):
            privacy = dict(PRIVACY_PROFILES[n % len(PRIVACY_PROFILES)])
            consent = ["analytics"] if n % 2 == 0 else []
            us.append(User(
                id=f"u{n}", handle=f"user{n}", display_name=f"User {n}",
                email=f"user{n}@example.org", phone=f"+44 20 7946 {n:04d}",
                birthday=f"{1970 + n % 40}-0{1 + n % 9}-1{n % 10}",
                location=f"City {n % 7}", bio=f"Hello, I am user {n}.",
                follower_count=n * 3, privacy=privacy, visibility=_visibility(n),
                consent=consent, moderation_notes=f"note {n}",
            ))
            for k in range(posts_per_user):
                pid = f"p{n}-{k}"
                ps.append(Post(
                    id=pid, author_id=f"u{n}", body=f"Post {k} by user {n}",
                    created_at=f"2026-0{1 + k % 9}-01T12:00:00Z", location=f"Cafe {n % 5}",
                    privacy=privacy, visibility="public", consent=consent,
                ))
                cs.append(Comment(id=f"c{n}-{k}", post_id=pid,
                                  author_id=f"u{1 + n % users}", body=f"Nice post {k}!"))
        store = cls(us, ps, cs)
        by_id: dict[str, Any] = {u.id: u for u in us}
        by_id.update((p.id, p) for p in ps)
        by_id.update((c.id, c) for c in cs)
        store._by_id = by_id
        return store

    def user(self, user_id: str) -> User | None:
        """The user with ``user_id``, or None."""
        obj = self._by_id.get(user_id)
        return obj if isinstance(obj, User) else None

    def get(self, node_id: str) -> Any:
        """Any object by id."""
        return self._by_id.get(node_id)

    def page(self, first: int = 10, after: str | None = None) -> list[User]:
        """Users in id order, ``first`` after the user ``after``."""
        start = 0
        if after is not None:
            idx = next((i for i, u in enumerate(self.users) if u.id == after), None)
            start = len(self.users) if idx is None else idx + 1
        return self.users[start:start + max(first, 0)]

    def posts_of(self, user_id: str, first: int = 10) -> list[Post]:
        """Posts by ``user_id``."""
        return [p for p in self.posts if p.author_id == user_id][:first]

    def comments_of(self, post_id: str) -> list[Comment]:
        """Comments on ``post_id``."""
        return [c for c in self.comments if c.post_id == post_id]

    def search(self, text: str, first: int = 10) -> Iterator[User | Post]:
        """Users whose handle and posts whose body contain ``text``."""
        found = 0
        candidates: list[User | Post] = [*self.users, *self.posts]
        for obj in candidates:
            hay = obj.handle if isinstance(obj, User) else obj.body
            if text.lower() in hay.lower():
                yield obj
                found += 1
                if found >= first:
                    return
