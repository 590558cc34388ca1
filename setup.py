"Setup for advnorm: reads settings.ini (nbdev 2), no pkg_resources."
from configparser import ConfigParser
import setuptools, shlex

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
for o in 'version description keywords author author_email license min_python lib_name git_url'.split():
    assert o in cfg, f'settings.ini is missing the key {o!r}'

req = lambda k: shlex.split(cfg.get(k, ''))
py_versions = '3.10 3.11 3.12 3.13'.split()
min_python = cfg['min_python']

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'],
    license='Apache-2.0', url=cfg['git_url'],
    keywords=cfg['keywords'].split(),
    packages=setuptools.find_packages(include=['advnorm', 'advnorm.*']),
    include_package_data=True,
    python_requires='>=' + min_python,
    install_requires=req('requirements'),
    extras_require={'dev': req('dev_requirements')},
    entry_points={'console_scripts': req('console_scripts'), 'nbdev': [f"{cfg['lib_name']}={cfg['lib_name']}._modidx:d"]},
    classifiers=['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]]
              + ['License :: OSI Approved :: Apache Software License', 'Topic :: Scientific/Engineering :: Medical Science Apps.'],
    zip_safe=False,
)
