async def seed_demo(res):
    return 0
