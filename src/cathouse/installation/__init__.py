"""The installation service: install cats, consent to permissions, keep credentials safe."""
