import httpx


async def test_login_and_me(auth_client: httpx.AsyncClient, user_tokens) -> None:
    me = await auth_client.get(
        "/users/me", headers={"Authorization": f"Bearer {user_tokens['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["username"] == user_tokens["user"]["username"]
